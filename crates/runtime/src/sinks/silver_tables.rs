//! The silver tables a pipeline writes — its rows, `<name>_quarantine` and the tables of
//! `output.also` — and the pipeline checkpoints stored beside them in the lake.
//!
//! The rows table holds the positions a restart resumes from and is committed last; the others
//! are committed before it with the same positions, so they are never behind it and a replay
//! finds what they already hold.

use std::collections::HashMap;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use strata_core::Pipeline;
use strata_core::keyed::KeyedTable;
use strata_layers::lake::Lake;
use strata_layers::silver::{
    Committed, Coverage, CoverageIndex, IcebergTable as Table, SilverAppend, SilverCatalog,
    SilverMerge, WriteOptions,
};

use crate::contract::StateUpdate;
use crate::error::{Result, RuntimeError};
use crate::position::SummaryKeys;

/// A pipeline's silver tables, opened (created if needed) for writing.
#[derive(Debug, Clone)]
pub struct SilverTables {
    /// The catalog.
    pub catalog: SilverCatalog,
    /// The lake (for pipeline checkpoints).
    pub lake: Lake,
    /// The rows table.
    pub rows: Table,
    /// The quarantine table.
    pub quarantine: Table,
    /// Parquet buffers of the rows table.
    pub rows_options: WriteOptions,
    /// Parquet buffers of the quarantine table.
    pub quarantine_options: WriteOptions,
    /// The keyed kind of the rows table (`None`: append).
    pub keyed: Option<KeyedTable>,
    /// The `output.also` tables, in declared order.
    pub also: Vec<AlsoTable>,
    /// Paths of the committed state chain: the full state, then its deltas.
    state_chain: Vec<String>,
}

impl SilverTables {
    /// Opens the tables named after the pipeline, with its output and quarantine schemas and
    /// its event-time partitioning; `full_refresh` drops them first.
    pub async fn open(
        catalog: SilverCatalog,
        lake: Lake,
        pipeline: &Pipeline,
        full_refresh: bool,
        (rows_options, quarantine_options): (WriteOptions, WriteOptions),
    ) -> Result<Self> {
        let name = pipeline.spec().name.clone();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(RuntimeError::config(
                format!("pipeline name `{name}`"),
                "cannot name a silver table",
                "use letters, digits and _",
            ));
        }
        let qname = format!("{name}_quarantine");
        let also_specs = pipeline.spec().output.also_outputs();
        if full_refresh {
            let also_names = also_specs.iter().map(|(n, _)| n);
            for table in [&name, &qname].into_iter().chain(also_names) {
                if catalog.drop_table_if_exists(table).await? {
                    tracing::info!(table = %table, "full refresh: dropped silver table");
                }
            }
        }
        let output = &pipeline.spec().output;
        let keyed = KeyedTable::from_spec(output, pipeline.output_schema())?;
        // Declared partitioning wins. Otherwise an append table is cut by day of its event
        // time, and a keyed table, rewritten key by key, is not partitioned (a day per file
        // would scatter a key's neighbours over many small files).
        let partition_by: Vec<String> = match (&keyed, &output.event_time) {
            _ if !output.partition_by.is_empty() => output.partition_by.clone(),
            (None, Some(et)) => vec![format!("day({et})")],
            _ => Vec::new(),
        };
        let schema = match &keyed {
            Some(k) => k.table_schema().clone(),
            None => pipeline.output_schema(),
        };
        let rows = catalog
            .ensure_table_partitioned(&name, &schema, &partition_by)
            .await?;
        let quarantine = ensure(&catalog, &qname, &pipeline.quarantine_schema(), None).await?;
        let mut also = Vec::with_capacity(also_specs.len());
        for (also_name, spec) in &also_specs {
            let keyed = KeyedTable::from_spec(spec, pipeline.output_schema())?;
            let schema = match &keyed {
                Some(k) => k.table_schema().clone(),
                None => pipeline.output_schema(),
            };
            let partition_by: Vec<String> = match (&keyed, &spec.event_time) {
                _ if !spec.partition_by.is_empty() => spec.partition_by.clone(),
                (None, Some(et)) => vec![format!("day({et})")],
                _ => Vec::new(),
            };
            let table = catalog
                .ensure_table_partitioned(also_name, &schema, &partition_by)
                .await?;
            // A table added to a pipeline that already wrote rows would only get what comes
            // next (the input resumes after the rows table's positions): refuse, don't diverge.
            let holds = |t: &Table| {
                strata_layers::silver::current_summary_property(t, "total-records")
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
                    > 0
            };
            if table.metadata().current_snapshot().is_none() && holds(&rows) {
                return Err(RuntimeError::config(
                    format!("output.also table `{also_name}`"),
                    format!("is new, and `{name}` already holds rows it would never get"),
                    "rebuild the pipeline's tables with --full-refresh (batch), or give the table its own pipeline",
                ));
            }
            also.push(AlsoTable { table, keyed });
        }
        Ok(SilverTables {
            catalog,
            lake,
            rows,
            quarantine,
            rows_options,
            quarantine_options,
            keyed,
            also,
            state_chain: Vec::new(),
        })
    }

    /// The rows table's name.
    pub fn name(&self) -> String {
        self.rows.identifier().name().to_string()
    }

    /// The pipeline state the rows table's current snapshot names: the last full checkpoint
    /// and the deltas after it (oldest first); remembers the chain for [`SilverTables::state_summary`].
    pub async fn committed_state(&mut self) -> Result<(Option<Vec<u8>>, Vec<Vec<u8>>)> {
        let chain = state_chain_of(&self.rows)?;
        let state = read_state_chain(&self.lake, &self.name(), &chain).await?;
        self.state_chain = chain;
        Ok(state)
    }

    /// Writes a commit's state (create-only) at `path` and returns the summary entries naming
    /// the chain it ends: a full state starts a new chain, a delta extends the current one.
    pub async fn state_summary(
        &mut self,
        path: String,
        state: StateUpdate,
    ) -> Result<Vec<(String, String)>> {
        let path = self.put_state(path, state.bytes).await?;
        if state.delta && !self.state_chain.is_empty() {
            self.state_chain.push(path);
        } else {
            self.state_chain = vec![path];
        }
        let deltas = serde_json::to_string(&self.state_chain[1..]).unwrap_or_else(|_| "[]".into());
        Ok(vec![
            (SummaryKeys::STATE.to_string(), self.state_chain[0].clone()),
            (SummaryKeys::STATE_DELTAS.to_string(), deltas),
        ])
    }

    /// Writes a pipeline checkpoint (create-only) and returns its path below the lake root.
    pub async fn put_state(&self, path: String, state: Vec<u8>) -> Result<String> {
        self.lake.put_new(&path, bytes::Bytes::from(state)).await?;
        Ok(path)
    }

    /// Starts staging rows: appended, or merged by key for a keyed table.
    pub async fn start_rows(&self) -> Result<RowsWriter> {
        Ok(match &self.keyed {
            Some(k) => RowsWriter::Merge(SilverMerge::start(
                &self.rows,
                k.clone(),
                &self.rows_options,
            )),
            None => RowsWriter::Append(self.start_append().await?),
        })
    }

    /// Starts staging rows for the `output.also` table number `i`.
    pub async fn start_also(&self, i: usize) -> Result<RowsWriter> {
        let Some(also) = self.also.get(i) else {
            return Err(RuntimeError::Stage {
                stage: "sink",
                message: format!("no output.also table number {i}"),
            });
        };
        Ok(match &also.keyed {
            Some(k) => RowsWriter::Merge(SilverMerge::start(
                &also.table,
                k.clone(),
                &self.rows_options,
            )),
            None => RowsWriter::Append(SilverAppend::start(&also.table, &self.rows_options).await?),
        })
    }

    /// Starts an append to the rows table (also a commit of summary properties alone).
    pub async fn start_append(&self) -> Result<SilverAppend> {
        Ok(SilverAppend::start(&self.rows, &self.rows_options).await?)
    }

    /// Starts staging quarantine.
    pub async fn start_quarantine(&self) -> Result<SilverAppend> {
        Ok(SilverAppend::start(&self.quarantine, &self.quarantine_options).await?)
    }
}

/// The paths of the pipeline state `table`'s current snapshot names: the last full checkpoint,
/// then the deltas written after it (oldest first); empty when no commit stored a state.
pub fn state_chain_of(table: &Table) -> Result<Vec<String>> {
    let Some(path) = strata_layers::silver::current_summary_property(table, SummaryKeys::STATE)
    else {
        return Ok(Vec::new());
    };
    let deltas: Vec<String> =
        match strata_layers::silver::current_summary_property(table, SummaryKeys::STATE_DELTAS) {
            None => Vec::new(),
            Some(text) => serde_json::from_str(&text).map_err(|e| RuntimeError::Protocol {
                table: table.identifier().name().to_string(),
                problem: format!(
                    "`{}` of the last commit is not a JSON list of paths: {e}",
                    SummaryKeys::STATE_DELTAS
                ),
                hint: "the table was written by something else; rebuild with a full refresh",
            })?,
        };
    Ok(std::iter::once(path).chain(deltas).collect())
}

/// Reads a state chain from the lake: the full state (if any) and its deltas, oldest first.
pub async fn read_state_chain(
    lake: &Lake,
    table: &str,
    chain: &[String],
) -> Result<(Option<Vec<u8>>, Vec<Vec<u8>>)> {
    let Some((full, deltas)) = chain.split_first() else {
        return Ok((None, Vec::new()));
    };
    let full = read_state(lake, table, full).await?;
    let mut delta_bytes = Vec::with_capacity(deltas.len());
    for d in deltas {
        delta_bytes.push(read_state(lake, table, d).await?);
    }
    Ok((Some(full), delta_bytes))
}

async fn read_state(lake: &Lake, table: &str, path: &str) -> Result<Vec<u8>> {
    lake.get(path)
        .await
        .map(|b| b.to_vec())
        .map_err(|e| RuntimeError::Protocol {
            table: table.to_string(),
            problem: format!("reading the pipeline state {path} its last commit names: {e}"),
            hint: "restore the file from a backup, or rebuild with a full refresh",
        })
}

async fn ensure(
    catalog: &SilverCatalog,
    name: &str,
    schema: &SchemaRef,
    event_time: Option<&str>,
) -> Result<Table> {
    Ok(catalog.ensure_table(name, schema, event_time).await?)
}

/// A table of `output.also`: the pipeline's rows, kept as its own kind.
#[derive(Debug, Clone)]
pub struct AlsoTable {
    /// The table.
    pub table: Table,
    /// Its keyed kind (`None`: append).
    pub keyed: Option<KeyedTable>,
}

/// Rows staged for the rows table until a commit.
#[derive(Debug)]
pub enum RowsWriter {
    /// An append table: rows go to Parquet as they come.
    Append(SilverAppend),
    /// A keyed table: change events are buffered and merged at the commit.
    Merge(SilverMerge),
}

impl RowsWriter {
    /// Stages a batch of pipeline output.
    pub async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        match self {
            RowsWriter::Append(w) => w.write(rows).await?,
            RowsWriter::Merge(w) => w.write(rows)?,
        }
        Ok(())
    }

    /// Commits what is staged after `check` accepted the version it commits onto.
    pub async fn commit_checked(
        self,
        catalog: &SilverCatalog,
        summary: HashMap<String, String>,
        check: impl FnMut(&Table) -> strata_layers::Result<Coverage>,
    ) -> Result<Committed> {
        match self {
            RowsWriter::Append(w) => Ok(w.commit_checked(catalog, summary, check).await?),
            RowsWriter::Merge(w) => {
                let (committed, merge) = w.commit_checked(catalog, summary, check).await?;
                log_merge(&committed, &merge);
                Ok(committed)
            }
        }
    }

    /// Commits what is staged, recording the inputs it `covered` (checked with `index`).
    pub async fn commit_indexed(
        self,
        catalog: &SilverCatalog,
        covered: &[String],
        extra: &[(String, String)],
        index: &mut CoverageIndex,
    ) -> Result<Committed> {
        match self {
            RowsWriter::Append(w) => Ok(w.commit_indexed(catalog, covered, extra, index).await?),
            RowsWriter::Merge(w) => {
                let (committed, merge) = w.commit_indexed(catalog, covered, extra, index).await?;
                log_merge(&committed, &merge);
                Ok(committed)
            }
        }
    }
}

fn log_merge(committed: &Committed, merge: &strata_layers::silver::MergeReport) {
    if committed.report.skipped {
        return;
    }
    tracing::info!(
        table = %committed.table.identifier(),
        events = merge.events,
        files_rewritten = merge.rewrite.removed_files,
        rows_before = merge.rewrite.removed_rows,
        rows_after = merge.rewrite.added_rows,
        files_pruned = merge.files_pruned,
        "merged change events (copy-on-write)"
    );
}
