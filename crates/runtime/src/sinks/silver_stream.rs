//! Silver fed from Kafka (`strata stream silver`): the table is the source of truth for
//! positions.
//!
//! Every commit stores, in its snapshot summary, the next offset of each partition
//! ([`SummaryKeys::KAFKA_POSITIONS`]), the pipeline state written for that point
//! ([`SummaryKeys::STATE`]) and the writer's epoch ([`SummaryKeys::WRITER_EPOCH`]). A new writer
//! takes the next epoch with an empty commit when it starts; every commit is a compare-and-swap
//! checked against the version it is based on, so a zombie writer's late commit finds a newer
//! epoch and is refused.
//!
//! Rows, quarantine and the `output.also` tables are separate tables, so separate commits: the
//! rows table last. If the process dies in between, the others are ahead; the replay from the
//! rows table's positions drops records below each table's own positions (they carry their
//! partition and offset), so no table ever holds a record twice.

use std::collections::HashMap;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Int32Type, Int64Type};
use strata_connectors::kafka::Positions;
use strata_core::lineage::{KAFKA_OFFSET, KAFKA_PARTITION};
use strata_layers::error::LayersError;
use strata_layers::silver::{
    Coverage, IcebergTable as Table, SilverAppend, current_summary_property,
};

use super::silver_tables::{RowsWriter, SilverTables};
use crate::contract::{CommitReport, Committed, Committer, Sink, StateUpdate};
use crate::error::{Result, RuntimeError};
use crate::position::{Position, SummaryKeys};

/// Stages into the silver tables; commits Kafka positions with a writer epoch.
pub struct SilverStreamSink {
    tables: SilverTables,
    epoch: i64,
    rows_at: Positions,
    quarantine_at: Positions,
    rows: Option<RowsWriter>,
    quarantine: Option<SilverAppend>,
    also_at: Vec<Positions>,
    also: Vec<Option<RowsWriter>>,
    seq: u64,
}

impl std::fmt::Debug for SilverStreamSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SilverStreamSink")
            .field("table", &self.tables.name())
            .field("epoch", &self.epoch)
            .field("rows_at", &self.rows_at)
            .finish()
    }
}

impl SilverStreamSink {
    /// A sink over `tables`; the writer epoch is taken at [`Committer::committed`].
    pub fn new(tables: SilverTables) -> Self {
        let n = tables.also.len();
        SilverStreamSink {
            also_at: vec![Positions::new(); n],
            also: (0..n).map(|_| None).collect(),
            tables,
            epoch: 0,
            rows_at: Positions::new(),
            quarantine_at: Positions::new(),
            rows: None,
            quarantine: None,
            seq: 0,
        }
    }

    /// This writer's epoch (0 before [`Committer::committed`]).
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Takes the next writer epoch with an empty commit: from then on an older writer is fenced.
    async fn claim_epoch(&mut self) -> Result<i64> {
        let name = self.tables.name();
        for _ in 0..8 {
            let table = &self.tables.rows;
            let current = epoch_of(table);
            let ours = current + 1;
            let mut summary = HashMap::from([
                (SummaryKeys::WRITER_EPOCH.to_string(), ours.to_string()),
                (
                    SummaryKeys::KAFKA_POSITIONS.to_string(),
                    positions_json(&positions_of(table)?),
                ),
            ]);
            // The claim is the newest snapshot a restart reads its state from: it names the
            // whole chain (the full checkpoint and its deltas), not just the full one.
            for key in [SummaryKeys::STATE, SummaryKeys::STATE_DELTAS] {
                if let Some(s) = current_summary_property(table, key) {
                    summary.insert(key.to_string(), s);
                }
            }
            let empty = self.tables.start_append().await?;
            let claim = empty
                .commit_checked(&self.tables.catalog, summary, |base| {
                    if epoch_of(base) != current {
                        // Someone else took an epoch meanwhile: re-plan with theirs.
                        return Err(LayersError::Fenced {
                            table: base.identifier().to_string(),
                            ours,
                            current: epoch_of(base),
                        });
                    }
                    Ok(Coverage::New)
                })
                .await;
            match claim {
                Ok(c) => {
                    self.tables.rows = c.table;
                    return Ok(ours);
                }
                Err(LayersError::Fenced { .. }) => {
                    self.tables.rows = self.tables.catalog.load(&name).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(RuntimeError::Protocol {
            table: name,
            problem: "other writers kept taking writer epochs".into(),
            hint: "run one writer per table (or per --instance) at a time",
        })
    }
}

/// The positions of a table version's summary.
/// The Kafka positions `table`'s current snapshot committed: the next offset of each partition
/// (empty before the first commit).
pub fn positions_of(table: &Table) -> Result<Positions> {
    let Some(json) = current_summary_property(table, SummaryKeys::KAFKA_POSITIONS) else {
        return Ok(Positions::new());
    };
    let bad = |problem: String| RuntimeError::Protocol {
        table: table.identifier().to_string(),
        problem,
        hint: "the snapshot summary was not written by Strata",
    };
    serde_json::from_str::<HashMap<String, i64>>(&json)
        .map_err(|e| {
            bad(format!(
                "`{}` is not valid: {e}",
                SummaryKeys::KAFKA_POSITIONS
            ))
        })?
        .into_iter()
        .map(|(p, o)| {
            p.parse::<i32>()
                .map(|p| (p, o))
                .map_err(|e| bad(format!("partition `{p}`: {e}")))
        })
        .collect()
}

fn epoch_of(table: &Table) -> i64 {
    current_summary_property(table, SummaryKeys::WRITER_EPOCH)
        .and_then(|e| e.parse().ok())
        .unwrap_or(0)
}

fn positions_json(p: &Positions) -> String {
    let map: HashMap<String, i64> = p.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// The check every commit of this writer makes on the version it is based on: our epoch is still
/// the newest and nobody else moved the positions.
fn guard(
    epoch: i64,
    expected: Positions,
) -> impl Fn(&Table) -> strata_layers::error::Result<Coverage> {
    move |base: &Table| {
        let current = epoch_of(base);
        let fenced = || LayersError::Fenced {
            table: base.identifier().to_string(),
            ours: epoch,
            current,
        };
        if current > epoch {
            return Err(fenced());
        }
        match positions_of(base) {
            Ok(now) if now == expected => Ok(Coverage::New),
            _ => Err(fenced()),
        }
    }
}

/// Keeps the rows whose (partition, offset) is at or beyond `from` (already-committed records
/// are dropped on replay).
fn not_before(batch: &RecordBatch, from: &Positions) -> Result<RecordBatch> {
    if from.is_empty() || batch.num_rows() == 0 {
        return Ok(batch.clone());
    }
    let (Some(p), Some(o)) = (
        batch.column_by_name(KAFKA_PARTITION),
        batch.column_by_name(KAFKA_OFFSET),
    ) else {
        return Ok(batch.clone());
    };
    let (Some(p), Some(o)) = (
        p.as_primitive_opt::<Int32Type>(),
        o.as_primitive_opt::<Int64Type>(),
    ) else {
        return Ok(batch.clone());
    };
    let keep: BooleanArray = p
        .iter()
        .zip(o.iter())
        .map(|(p, o)| match (p, o) {
            (Some(p), Some(o)) => Some(from.get(&p).is_none_or(|f| o >= *f)),
            _ => Some(true),
        })
        .collect();
    arrow::compute::filter_record_batch(batch, &keep).map_err(|e| RuntimeError::Stage {
        stage: "sink",
        message: format!("filtering replayed records: {e}"),
    })
}

#[async_trait::async_trait]
impl Sink for SilverStreamSink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        for i in 0..self.also.len() {
            let rows = not_before(rows, &self.also_at[i])?;
            if rows.num_rows() == 0 {
                continue;
            }
            if self.also[i].is_none() {
                self.also[i] = Some(self.tables.start_also(i).await?);
            }
            if let Some(w) = self.also[i].as_mut() {
                w.write(&rows).await?;
            }
        }
        let rows = not_before(rows, &self.rows_at)?;
        if rows.num_rows() == 0 {
            return Ok(());
        }
        if self.rows.is_none() {
            self.rows = Some(self.tables.start_rows().await?);
        }
        if let Some(w) = self.rows.as_mut() {
            w.write(&rows).await?;
        }
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        let rows = not_before(rows, &self.quarantine_at)?;
        if rows.num_rows() == 0 {
            return Ok(());
        }
        if self.quarantine.is_none() {
            self.quarantine = Some(self.tables.start_quarantine().await?);
        }
        if let Some(w) = self.quarantine.as_mut() {
            w.write(&rows).await?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Committer for SilverStreamSink {
    async fn committed(&mut self) -> Result<Committed> {
        self.epoch = self.claim_epoch().await?;
        self.rows_at = positions_of(&self.tables.rows)?;
        self.quarantine_at = positions_of(&self.tables.quarantine)?;
        self.also_at = self
            .tables
            .also
            .iter()
            .map(|a| positions_of(&a.table))
            .collect::<Result<_>>()?;
        let (state, state_deltas) = self.tables.committed_state().await?;
        Ok(Committed {
            position: (!self.rows_at.is_empty()).then(|| Position::kafka(self.rows_at.clone())),
            state,
            state_deltas,
        })
    }

    fn accepts_state_deltas(&self) -> bool {
        true
    }

    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport> {
        let Some(to) = position.kafka_offsets().cloned() else {
            return Err(RuntimeError::Protocol {
                table: self.tables.name(),
                problem: format!("a Kafka-position table was handed {position:?}"),
                hint: "feed it from a Kafka source",
            });
        };
        let epoch = self.epoch;
        // Quarantine and the also tables first; positions only move forward.
        let ahead = |at: &Positions| -> (Positions, HashMap<String, String>) {
            let mut next = at.clone();
            for (p, o) in &to {
                let e = next.entry(*p).or_insert(*o);
                *e = (*e).max(*o);
            }
            let summary = HashMap::from([
                (
                    SummaryKeys::KAFKA_POSITIONS.to_string(),
                    positions_json(&next),
                ),
                (SummaryKeys::WRITER_EPOCH.to_string(), epoch.to_string()),
            ]);
            (next, summary)
        };
        let (q_to, q_summary) = ahead(&self.quarantine_at);
        let quarantine = match self.quarantine.take() {
            Some(w) => w,
            None => self.tables.start_quarantine().await?,
        };
        let q = quarantine
            .commit_checked(
                &self.tables.catalog,
                q_summary,
                guard(epoch, self.quarantine_at.clone()),
            )
            .await?;
        self.tables.quarantine = q.table;
        self.quarantine_at = q_to;
        for i in 0..self.also.len() {
            let (a_to, a_summary) = ahead(&self.also_at[i]);
            let writer = match self.also[i].take() {
                Some(w) => w,
                None => self.tables.start_also(i).await?,
            };
            let a = writer
                .commit_checked(
                    &self.tables.catalog,
                    a_summary,
                    guard(epoch, self.also_at[i].clone()),
                )
                .await?;
            self.tables.also[i].table = a.table;
            self.also_at[i] = a_to;
        }
        let path = format!(
            "catalog/state/{}/stream-e{epoch:06}-{:09}.ckpt",
            self.tables.name(),
            self.seq
        );
        self.seq += 1;
        let mut r_summary = HashMap::from([
            (
                SummaryKeys::KAFKA_POSITIONS.to_string(),
                positions_json(&to),
            ),
            (SummaryKeys::WRITER_EPOCH.to_string(), epoch.to_string()),
        ]);
        r_summary.extend(self.tables.state_summary(path, state).await?);
        let rows = match self.rows.take() {
            Some(w) => w,
            None => self.tables.start_rows().await?,
        };
        let r = rows
            .commit_checked(
                &self.tables.catalog,
                r_summary,
                guard(epoch, self.rows_at.clone()),
            )
            .await?;
        self.tables.rows = r.table;
        self.rows_at = to;
        Ok(CommitReport {
            rows: r.report.rows,
            quarantined: q.report.rows,
            covers: format!("positions {:?}", self.rows_at),
            units: 0,
            conflicts: r.report.conflicts + q.report.conflicts,
        })
    }
}
