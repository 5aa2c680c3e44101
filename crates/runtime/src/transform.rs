//! What runs between a source and a sink: a [`Pipeline`], or [`Passthrough`] for a copy or an
//! ingestion (Kafka → bronze, an API → Kafka) that moves records unchanged.
//!
//! The driver only needs these six operations, so a copy gets the same commit protocol, stop
//! handling and hooks as a pipeline run, with an empty checkpoint.

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use strata_core::{Output, Pipeline, PipelineMetrics};

use crate::error::Result;

/// The stage between a source and a sink.
pub trait Transform: Send + 'static {
    /// A name for logs, lineage and metrics (the pipeline's name).
    fn name(&self) -> String;
    /// Processes one batch of the source's schema.
    fn process(&mut self, batch: &RecordBatch) -> Result<Output>;
    /// Flushes what order-defined steps hold at the end of input.
    fn finish(&mut self) -> Result<Output>;
    /// The state to store with a commit.
    fn checkpoint(&self) -> Result<Vec<u8>>;
    /// Restores a state returned by [`Transform::checkpoint`].
    fn restore(&mut self, state: &[u8]) -> Result<()>;
    /// A checkpoint of what changed since the previous one, or (`full`) the whole state from
    /// which later deltas start. Default: always the whole state.
    fn checkpoint_incremental(&mut self, _full: bool) -> Result<Vec<u8>> {
        self.checkpoint()
    }
    /// Restores a whole state and the deltas written after it, and records changes from here.
    fn restore_chain(&mut self, full: &[u8], deltas: &[Vec<u8>]) -> Result<()> {
        self.restore(deltas.last().map_or(full, |d| d.as_slice()))
    }
    /// Records changes from now on, so the next incremental checkpoint may be a delta.
    fn start_deltas(&mut self) {}
    /// Counters since the start of the run.
    fn metrics(&self) -> PipelineMetrics;
}

impl Transform for Pipeline {
    fn name(&self) -> String {
        self.spec().name.clone()
    }

    fn process(&mut self, batch: &RecordBatch) -> Result<Output> {
        Ok(Pipeline::process(self, batch)?)
    }

    fn finish(&mut self) -> Result<Output> {
        Ok(Pipeline::finish(self)?)
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        Ok(Pipeline::checkpoint(self)?)
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        Ok(Pipeline::restore(self, state)?)
    }

    fn checkpoint_incremental(&mut self, full: bool) -> Result<Vec<u8>> {
        Ok(Pipeline::checkpoint_incremental(self, full)?)
    }

    fn restore_chain(&mut self, full: &[u8], deltas: &[Vec<u8>]) -> Result<()> {
        Ok(Pipeline::restore_chain(self, full, deltas)?)
    }

    fn start_deltas(&mut self) {
        Pipeline::start_deltas(self)
    }

    fn metrics(&self) -> PipelineMetrics {
        Pipeline::metrics(self).clone()
    }
}

/// Hands every batch to the sink unchanged; nothing is quarantined and there is no state.
#[derive(Debug, Clone)]
pub struct Passthrough {
    name: String,
    nothing: RecordBatch,
    metrics: PipelineMetrics,
}

impl Passthrough {
    /// A copy named `name` (logs and lineage).
    pub fn new(name: impl Into<String>) -> Self {
        Passthrough {
            name: name.into(),
            nothing: RecordBatch::new_empty(SchemaRef::new(Schema::empty())),
            metrics: PipelineMetrics::default(),
        }
    }

    fn output(&self, rows: Vec<RecordBatch>) -> Output {
        let n: u64 = rows.iter().map(|b| b.num_rows() as u64).sum();
        Output {
            rows,
            quarantined: self.nothing.clone(),
            metrics: PipelineMetrics {
                rows_in: n,
                rows_out: n,
                ..PipelineMetrics::default()
            },
        }
    }
}

impl Transform for Passthrough {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn process(&mut self, batch: &RecordBatch) -> Result<Output> {
        let n = batch.num_rows() as u64;
        self.metrics.rows_in = self.metrics.rows_in.saturating_add(n);
        self.metrics.rows_out = self.metrics.rows_out.saturating_add(n);
        Ok(self.output(vec![batch.clone()]))
    }

    fn finish(&mut self) -> Result<Output> {
        Ok(self.output(Vec::new()))
    }

    fn checkpoint(&self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn restore(&mut self, _state: &[u8]) -> Result<()> {
        Ok(())
    }

    fn metrics(&self) -> PipelineMetrics {
        self.metrics.clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    use super::*;

    #[test]
    fn a_passthrough_hands_out_every_row_and_counts_it() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
            .expect("batch");
        let mut copy = Passthrough::new("copy");
        let out = copy.process(&batch).expect("process");
        assert_eq!(out.rows, vec![batch]);
        assert_eq!(out.quarantined.num_rows(), 0);
        assert_eq!((copy.metrics().rows_in, copy.metrics().rows_out), (3, 3));
        assert!(copy.checkpoint().expect("checkpoint").is_empty());
    }
}
