//! The live view (the Druid role): real-time rows of a streaming silver table, served in one
//! answer with its committed history.
//!
//! `strata stream silver` commits a table's rows together with the Kafka position each
//! partition reached and the pipeline state at that point. A live view follows the same topic
//! from exactly that commit:
//! - it loads the table's current snapshot, restores the pipeline state that snapshot names,
//!   and consumes the topic from the snapshot's positions, running the same pipeline;
//! - the rows it produces are what the silver stream will commit next, so the committed
//!   snapshot plus the view's rows is the table as of the view's position (`upto`), with no
//!   event counted twice and none missed at the seam;
//! - when a newer snapshot appears, a successor view is built from it (state restored, topic
//!   read from its positions) and replaces the current one once it has caught up. Queries keep
//!   reading the current pair (snapshot, rows) until then, so a commit landing before, during
//!   or after a query never changes what that query sees.
//!
//! Restarting from each commit's own state is what makes the seam exact for every step,
//! including order-defined ones (`dedup` keeps the first occurrence) and `window_aggregate`,
//! whose rows carry no Kafka position to cut on.
//!
//! Bounds: a view holds at most `max_mb` of rows and follows at most `max_seconds` past the
//! snapshot's commit time. Past either it pauses (answers stay exact up to `upto`, and say why
//! in `live.paused`) until the silver stream commits again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use iceberg::table::Table;
use serde::{Deserialize, Serialize};
use strata_connectors::kafka::{Assignment, KafkaConfig, Positions, partitions_of};
use strata_core::{BuildContext, Pipeline, PipelineSpec};
use strata_layers::lake::Lake;
use strata_layers::silver::{SilverCatalog, direct_files};
use strata_runtime::Position;
use strata_runtime::contract::{Polled, Source};
use strata_runtime::sinks::{positions_of, read_state_chain, state_chain_of};
use strata_runtime::sources::{KafkaBatching, KafkaTopicSource};

use crate::error::{Result, ServingError};

/// `live:` entries of `serve.yaml`: a silver table kept fresh by `strata stream silver`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConfig {
    /// The silver table (`silver.<name>` or `<name>`), written by `stream silver`.
    pub table: String,
    /// The pipeline spec `stream silver` runs (relative to the config file).
    pub pipeline: PathBuf,
    /// The Kafka topic `stream silver` reads.
    pub topic: String,
    /// Brokers (`${env:NAME}` allowed).
    pub brokers: String,
    /// librdkafka properties (values may be `${env:NAME}`).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Rows held at most, in MB of Arrow memory.
    #[serde(default = "default_max_mb")]
    pub max_mb: usize,
    /// How long past the table's last commit the view keeps following.
    #[serde(default = "default_max_seconds")]
    pub max_seconds: u64,
    /// How often the table's pointer is checked for a new commit, in milliseconds.
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
}

fn default_max_mb() -> usize {
    256
}

fn default_max_seconds() -> u64 {
    600
}

fn default_refresh_ms() -> u64 {
    250
}

impl LiveConfig {
    /// The table's bare name (its silver name).
    pub fn table_name(&self) -> &str {
        self.table.strip_prefix("silver.").unwrap_or(&self.table)
    }
}

/// What one answer reads of a live table: a committed snapshot and the rows after it.
#[derive(Debug, Clone)]
pub struct LiveRows {
    /// The table loaded at the snapshot the rows follow.
    pub table: Table,
    /// Its data files when they can be read directly (see `direct_files`).
    pub files: Option<Arc<Vec<String>>>,
    /// The rows past the snapshot, in the table's Arrow schema.
    pub rows: Arc<Vec<RecordBatch>>,
    /// The table's Arrow schema (what `rows` are cast to).
    pub schema: SchemaRef,
    /// Positions, snapshot and bounds, as reported with answers.
    pub facts: LiveFacts,
}

/// The facts of a live read that travel with an answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LiveFacts {
    /// The committed snapshot read.
    pub snapshot_id: Option<i64>,
    /// The Kafka positions that snapshot committed (partition → next offset).
    pub committed: BTreeMap<i32, i64>,
    /// The positions the live rows reach: the answer is the table as of these.
    pub upto: BTreeMap<i32, i64>,
    /// Live rows past the snapshot.
    pub rows: usize,
    /// Why the view stopped following, when it did.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub paused: Option<String>,
}

/// A live view of one table; [`LiveView::spawn`] starts following.
pub struct LiveView {
    config: LiveConfig,
    current: Mutex<Option<Arc<LiveRows>>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView")
            .field("table", &self.config.table)
            .field("topic", &self.config.topic)
            .finish()
    }
}

/// What a view needs to follow a table.
struct Follow {
    kafka: KafkaConfig,
    spec: PipelineSpec,
    catalog: SilverCatalog,
    lake: Lake,
}

/// A view being built or followed: a pipeline restored at a snapshot, reading past it.
struct Building {
    location: String,
    source: KafkaTopicSource,
    pipeline: Pipeline,
    rows: Vec<RecordBatch>,
    bytes: usize,
    upto: Positions,
    committed_at: Instant,
    base: LiveRows,
}

impl LiveView {
    /// Checks the config and starts following the table in the background (on the current
    /// tokio runtime). `catalog` is the silver namespace; `lake` holds the pipeline states.
    pub fn spawn(config: LiveConfig, catalog: SilverCatalog, lake: Lake) -> Result<Arc<Self>> {
        let what = format!("live ({})", config.table);
        let path = config.pipeline.clone();
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ServingError::config(&what, format!("{}: {e}", path.display())))?;
        let spec = if path.extension().is_some_and(|e| e == "json") {
            PipelineSpec::from_json(&text)
        } else {
            PipelineSpec::from_yaml(&text)
        }
        .map_err(|e| ServingError::config(&what, format!("{}: {e}", path.display())))?;
        if spec.name != config.table_name() {
            return Err(ServingError::config(
                &what,
                format!(
                    "the pipeline `{}` writes silver.{}, not the table named here",
                    path.display(),
                    spec.name
                ),
            ));
        }
        if !spec.output.kind.is_append() {
            return Err(ServingError::config(
                &what,
                "a live view follows an append table; a keyed table (snapshot / historical) \
                 is rewritten by key, so its live rows cannot be added to the snapshot",
            ));
        }
        let kafka = KafkaConfig::from_profile(&config.brokers, config.properties.clone())
            .map_err(|e| ServingError::config(&what, e.to_string()))?;
        let view = Arc::new(LiveView {
            config,
            current: Mutex::new(None),
            last_error: Mutex::new(None),
        });
        let follow = Follow {
            kafka,
            spec,
            catalog,
            lake,
        };
        tokio::spawn(view.clone().follow_forever(follow));
        Ok(view)
    }

    /// The table it serves as `(layer, name)`.
    pub fn key(&self) -> (String, String) {
        ("silver".to_string(), self.config.table_name().to_string())
    }

    /// What a query reads now: `None` until the view has loaded its first snapshot.
    pub fn current(&self) -> Option<Arc<LiveRows>> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The last error the view met while following (it retries), if any since its last success.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn publish(&self, building: &Building, paused: Option<String>) {
        let mut live = building.base.clone();
        live.rows = Arc::new(building.rows.clone());
        live.facts.upto = building.upto.clone();
        live.facts.rows = building.rows.iter().map(RecordBatch::num_rows).sum();
        live.facts.paused = paused;
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(live));
    }

    fn set_error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    async fn follow_forever(self: Arc<Self>, follow: Follow) {
        loop {
            if let Err(e) = self.follow(&follow).await {
                tracing::warn!(table = %self.config.table, error = %e, "live view: following failed; retrying in 1 s");
                self.set_error(Some(e.to_string()));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Follows the table: the current view reads on; a newer commit starts a successor that
    /// replaces it once caught up.
    async fn follow(&self, follow: &Follow) -> Result<()> {
        let mut current = self.start(follow).await?;
        self.publish(&current, None);
        self.set_error(None);
        let refresh = Duration::from_millis(self.config.refresh_ms.max(10));
        let mut checked = Instant::now();
        loop {
            let paused = self.bound_reached(&current);
            if paused.is_none() {
                if self.read_once(&mut current).await? {
                    self.publish(&current, None);
                }
            } else {
                self.publish(&current, paused);
                tokio::time::sleep(refresh).await;
            }
            if checked.elapsed() < refresh {
                continue;
            }
            checked = Instant::now();
            let location = self.location(follow).await?;
            if location != current.location {
                let mut next = self.start(follow).await?;
                // Catch up to where the current view is (or to the end of the topic) before
                // answering from the new commit, so that an answer never goes back in time.
                while !caught_up(&next.upto, &current.upto) {
                    if !self.read_once(&mut next).await? {
                        break;
                    }
                }
                self.publish(&next, None);
                current = next;
            }
        }
    }

    fn bound_reached(&self, building: &Building) -> Option<String> {
        if building.bytes > self.config.max_mb.saturating_mul(1 << 20) {
            return Some(format!(
                "holding {} MB of rows past the last commit (max_mb {}); waiting for `stream silver` to commit",
                building.bytes >> 20,
                self.config.max_mb
            ));
        }
        let since = building.committed_at.elapsed();
        (since > Duration::from_secs(self.config.max_seconds)).then(|| {
            format!(
                "the table's last commit is {} s old (max_seconds {}); is `stream silver` running?",
                since.as_secs(),
                self.config.max_seconds
            )
        })
    }

    /// Reads one batch into `building`; false when the topic had nothing new.
    async fn read_once(&self, building: &mut Building) -> Result<bool> {
        let polled = building.source.next().await.map_err(ServingError::lake)?;
        let Polled::Batch { batch, position } = polled else {
            return Ok(false);
        };
        let output = building
            .pipeline
            .process(&batch)
            .map_err(ServingError::lake)?;
        for rows in output.rows {
            if rows.num_rows() == 0 {
                continue;
            }
            let rows = conform(&rows, &building.base.schema)?;
            building.bytes = building.bytes.saturating_add(rows.get_array_memory_size());
            building.rows.push(rows);
        }
        if let Some(offsets) = position.as_ref().and_then(Position::kafka_offsets) {
            for (p, o) in offsets {
                building.upto.insert(*p, *o);
            }
        }
        Ok(true)
    }

    async fn location(&self, follow: &Follow) -> Result<String> {
        follow
            .catalog
            .metadata_location(self.config.table_name())
            .await
            .map_err(ServingError::lake)?
            .ok_or_else(|| ServingError::NotFound {
                what: "live table",
                name: self.config.table.clone(),
            })
    }

    /// Loads the table's current snapshot, restores the pipeline state it names and opens the
    /// topic at its positions.
    async fn start(&self, follow: &Follow) -> Result<Building> {
        let name = self.config.table_name();
        let table = follow
            .catalog
            .load(name)
            .await
            .map_err(ServingError::lake)?;
        let location = table.metadata_location().unwrap_or_default().to_string();
        let committed = positions_of(&table).map_err(ServingError::lake)?;
        let chain = state_chain_of(&table).map_err(ServingError::lake)?;
        let (state, deltas) = read_state_chain(&follow.lake, name, &chain)
            .await
            .map_err(ServingError::lake)?;
        let kafka = follow.kafka.clone();
        let topic = self.config.topic.clone();
        let partitions = tokio::task::spawn_blocking(move || {
            partitions_of(&kafka, &topic).map_err(|e| e.to_string())
        })
        .await
        .map_err(ServingError::lake)?
        .map_err(ServingError::lake)?;
        let mut source = KafkaTopicSource::new(
            follow.kafka.clone(),
            &self.config.topic,
            format!("strata-live-{name}"),
            Assignment::Partitions(partitions),
            KafkaBatching {
                max_rows: 8_192,
                max_bytes: 8 << 20,
                max_wait: Duration::from_millis(20),
            },
        );
        let mut pipeline = Pipeline::build(&follow.spec, source.schema(), &BuildContext::default())
            .map_err(|e| {
                ServingError::config(format!("live ({})", self.config.table), e.to_string())
            })?;
        if let Some(full) = state {
            pipeline
                .restore_chain(&full, &deltas)
                .map_err(ServingError::lake)?;
        }
        let start = (!committed.is_empty()).then(|| Position::kafka(committed.clone()));
        source
            .seek(start.as_ref())
            .await
            .map_err(ServingError::lake)?;
        let files = direct_files(&table, None)
            .await
            .map_err(ServingError::lake)?
            .map(Arc::new);
        let metadata = table.metadata();
        let schema = Arc::new(
            iceberg::arrow::schema_to_arrow_schema(metadata.current_schema())
                .map_err(ServingError::lake)?,
        );
        // The follow bound counts from the commit's own time, not from when the view saw it.
        let committed_ms = metadata
            .current_snapshot()
            .map(|s| s.timestamp_ms())
            .unwrap_or_else(|| metadata.last_updated_ms());
        let age_ms = u64::try_from(now_ms().saturating_sub(committed_ms)).unwrap_or(0);
        let committed_at = Instant::now()
            .checked_sub(Duration::from_millis(age_ms))
            .unwrap_or_else(Instant::now);
        let base = LiveRows {
            files,
            rows: Arc::new(Vec::new()),
            schema,
            facts: LiveFacts {
                snapshot_id: metadata.current_snapshot_id(),
                committed: committed.clone(),
                upto: committed.clone(),
                rows: 0,
                paused: None,
            },
            table,
        };
        Ok(Building {
            location,
            source,
            pipeline,
            rows: Vec::new(),
            bytes: 0,
            upto: committed,
            committed_at,
            base,
        })
    }
}

/// Whether `next` reached `current` in every partition `current` read.
fn caught_up(next: &Positions, current: &Positions) -> bool {
    current
        .iter()
        .all(|(p, o)| next.get(p).is_some_and(|n| n >= o))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The pipeline's rows in the table's schema (same columns by name; types cast where the
/// table's Arrow form differs, e.g. a timestamp's zone spelling).
fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let bad = |e: String| ServingError::Lake {
        message: format!("live rows do not fit the table's schema: {e}"),
    };
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match rows.column_by_name(field.name()) {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            Some(c) => arrow::compute::cast(c, field.data_type())
                .map_err(|e| bad(format!("column `{}`: {e}", field.name())))?,
            None => arrow::array::new_null_array(field.data_type(), rows.num_rows()),
        };
        columns.push(column);
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options)
        .map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_successor_is_caught_up_only_when_every_partition_is() {
        let current = Positions::from([(0, 10), (1, 5)]);
        assert!(!caught_up(&Positions::from([(0, 10)]), &current));
        assert!(!caught_up(&Positions::from([(0, 10), (1, 4)]), &current));
        assert!(caught_up(&Positions::from([(0, 11), (1, 5)]), &current));
        assert!(caught_up(&Positions::new(), &Positions::new()));
    }
}
