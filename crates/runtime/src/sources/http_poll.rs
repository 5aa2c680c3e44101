//! An HTTP API polled with a cursor (the X recent-search preset, or any JSON API) as a source:
//! each page is one batch of `key`/`value` records (see
//! [`crate::sinks::kafka_records::records_schema`]) with the [`Position::Cursor`] that holds
//! once those records are in Kafka, so the driver's commit after each page is the poller's
//! save. With a schedule the source waits (idle) between cycles until the driver stops it;
//! without one it ends after one cycle, the shape Airflow and cron want.
//!
//! [`open_http_ingest`] builds this source and its [`KafkaRecordsSink`] from a
//! [`PollerConfig`]: `strata ingest http` and the `x_poller` example are that call plus the
//! driver.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use strata_connectors::http::{CycleReport, HttpPoller, PollerConfig, PollerState, PollerTotals};
use strata_connectors::kafka::{KafkaConfig, KafkaSink, OutRecord};
use strata_connectors::state_file;
use tokio::time::Instant;

use crate::contract::{Polled, Source};
use crate::error::{Result, RuntimeError};
use crate::position::Position;
use crate::sinks::kafka_records::{KafkaRecordsSink, PositionFile, records_schema};

/// What a poll run did, readable while and after the driver runs it.
#[derive(Debug, Default, Clone)]
pub struct PollLog {
    /// Cycles finished by this run, each with the number of cycles completed after it (the
    /// `cycles` of its end position: a report counts once that position is committed).
    pub cycles: Vec<(u64, CycleReport)>,
    /// Pages, records and requests fetched.
    pub totals: PollerTotals,
}

/// The poller's pages as batches, cycle after cycle.
pub struct HttpPollSource {
    poller: HttpPoller,
    name: String,
    schedule: Option<Duration>,
    /// The state after the last page handed out.
    state: PollerState,
    /// The cycle in progress and when it started.
    cycle: Option<(CycleReport, Instant)>,
    /// When the next cycle may start, once one finished in this run.
    next_cycle_at: Option<Instant>,
    log: Arc<Mutex<PollLog>>,
    schema: SchemaRef,
}

impl HttpPollSource {
    /// A source over `poller`; `schedule` is the interval between cycle starts (`None`: one
    /// cycle, then the end).
    pub fn new(poller: HttpPoller, schedule: Option<Duration>) -> Self {
        HttpPollSource {
            name: format!("http://{}", poller.config().name),
            poller,
            schedule,
            state: PollerState::default(),
            cycle: None,
            next_cycle_at: None,
            log: Arc::new(Mutex::new(PollLog::default())),
            schema: records_schema(),
        }
    }

    /// The run's cycle reports and totals (shared with the source inside the driver).
    pub fn log(&self) -> Arc<Mutex<PollLog>> {
        self.log.clone()
    }

    fn batch(records: &[OutRecord], schema: &SchemaRef) -> Result<RecordBatch> {
        let keys: BinaryArray = records.iter().map(|r| r.key.as_deref()).collect();
        let values: BinaryArray = records.iter().map(|r| r.value.as_deref()).collect();
        RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(values)]).map_err(|e| {
            RuntimeError::Stage {
                stage: "source",
                message: format!("a page's records: {e}"),
            }
        })
    }

    fn record(&self, update: impl FnOnce(&mut PollLog)) {
        if let Ok(mut log) = self.log.lock() {
            update(&mut log);
        }
    }
}

/// The position a poller state is.
pub fn position_of(state: &PollerState) -> Position {
    Position::Cursor {
        cursor: state.cursor.clone(),
        resume: state.in_progress.clone(),
        cycles: state.cycles,
    }
}

/// The poller state a position is; another kind is a protocol error naming `source`.
pub fn state_of(source: &str, position: Option<&Position>) -> Result<PollerState> {
    match position {
        None => Ok(PollerState::default()),
        Some(Position::Cursor {
            cursor,
            resume,
            cycles,
        }) => Ok(PollerState {
            cursor: cursor.clone(),
            in_progress: resume.clone(),
            cycles: *cycles,
        }),
        Some(other) => Err(RuntimeError::Protocol {
            table: source.to_string(),
            problem: format!("the committed position is not an HTTP cursor: {other:?}"),
            hint: "the state file belongs to another kind of source; point state_file elsewhere",
        }),
    }
}

#[async_trait::async_trait]
impl Source for HttpPollSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn describe(&self) -> String {
        let resume = match &self.state.in_progress {
            Some(p) => format!(", resuming a cycle at page {}", p.next_page),
            None => String::new(),
        };
        format!(
            "{} (cursor {}{resume}, {})",
            self.name,
            self.state.cursor.as_deref().unwrap_or("none"),
            match self.schedule {
                Some(every) => format!("a cycle every {} s", every.as_secs()),
                None => "one cycle".to_string(),
            }
        )
    }

    async fn seek(&mut self, committed: Option<&Position>) -> Result<()> {
        self.state = state_of(&self.name, committed)?;
        Ok(())
    }

    async fn next(&mut self) -> Result<Polled> {
        if self.cycle.is_none() {
            if let Some(at) = self.next_cycle_at {
                if self.schedule.is_none() {
                    return Ok(Polled::End);
                }
                let now = Instant::now();
                if now < at {
                    // Idle in short steps, so the driver sees commits and stops promptly.
                    tokio::time::sleep((at - now).min(Duration::from_secs(1))).await;
                    return Ok(Polled::Idle);
                }
            }
            self.cycle = Some((CycleReport::default(), Instant::now()));
        }
        let Some((report, started)) = self.cycle.as_mut() else {
            return Ok(Polled::Idle);
        };
        let started = *started;
        let page = self.poller.next_page(&self.state, report).await?;
        self.state = page.state.clone();
        let position = position_of(&page.state);
        let totals = self.poller.totals();
        self.record(|log| log.totals = totals);
        if page.cycle_done
            && let Some((report, _)) = self.cycle.take()
        {
            tracing::info!(source = %self.poller.config().name, pages = report.pages,
                records = report.records, cursor = ?report.cursor, "cycle done");
            let cycles = page.state.cycles;
            self.record(|log| log.cycles.push((cycles, report)));
            self.next_cycle_at = Some(started + self.schedule.unwrap_or_default());
        }
        if page.records.is_empty() {
            return Ok(Polled::Reached(position));
        }
        Ok(Polled::Batch {
            batch: Self::batch(&page.records, &self.schema)?,
            position: Some(position),
        })
    }
}

/// The poller's state file (`{cursor, in_progress, cycles}`, the format it always had).
#[derive(Debug, Clone)]
pub struct PollerStateFile {
    path: PathBuf,
}

impl PollerStateFile {
    /// The state file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PollerStateFile { path: path.into() }
    }
}

impl PositionFile for PollerStateFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<Option<Position>> {
        let state: Option<PollerState> = state_file::read(&self.path)?;
        Ok(state.as_ref().map(position_of))
    }

    fn save(&self, position: &Position) -> Result<()> {
        let state = state_of(&self.path.display().to_string(), Some(position))?;
        Ok(state_file::write(&self.path, &state)?)
    }
}

/// The source and sink of an HTTP ingestion: secrets resolved, the topic checked, the producer
/// connected. Blocking (Kafka metadata): call it off the async runtime's workers.
pub fn open_http_ingest(config: PollerConfig) -> Result<(HttpPollSource, KafkaRecordsSink)> {
    let kafka = KafkaConfig::from_profile(&config.kafka.brokers, config.kafka.properties.clone())?;
    let topic = config.kafka.topic.clone();
    let name = config.name.clone();
    let state_path = config.state_path();
    let schedule = config
        .schedule
        .as_ref()
        .map(|s| Duration::from_secs(s.interval_secs));
    // Secrets first: a missing variable is reported before any broker is contacted.
    let poller = HttpPoller::new(config)?;
    strata_connectors::kafka::partitions_of(&kafka, &topic)?;
    let producer = KafkaSink::open(&kafka, None)?;
    let sink = KafkaRecordsSink::new(
        producer,
        topic,
        vec![("strata.source".into(), name.into_bytes())],
        PollerStateFile::new(state_path),
    );
    Ok((HttpPollSource::new(poller, schedule), sink))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_connectors::http::CycleProgress;

    #[test]
    fn the_state_file_keeps_the_poller_format_and_round_trips_as_a_position() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        // A state file as the poller always wrote it (before it ran on the driver).
        std::fs::write(
            &path,
            r#"{"cursor":"1034","in_progress":{"cursor_sent":"1034","next_token":"tok20","next_page":3,"new_cursor":"1046"},"cycles":2}"#,
        )
        .expect("write");
        let file = PollerStateFile::new(&path);
        let position = file.load().expect("load").expect("saved");
        let state = state_of("x", Some(&position)).expect("cursor");
        assert_eq!(
            state,
            PollerState {
                cursor: Some("1034".into()),
                in_progress: Some(CycleProgress {
                    cursor_sent: Some("1034".into()),
                    next_token: "tok20".into(),
                    next_page: 3,
                    new_cursor: Some("1046".into()),
                }),
                cycles: 2,
            }
        );
        file.save(&position).expect("save");
        let again: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(again["in_progress"]["next_token"], "tok20");
        assert_eq!(again["cycles"], 2);
        // A position of another source is refused with the file's name.
        let err = file
            .save(&Position::files(["a".to_string()]))
            .expect_err("not a cursor");
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
