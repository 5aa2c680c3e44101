//! Running a planned query within its bounds: at most `max_rows` rows (one more is fetched to
//! know the answer was cut), a time limit after which the query's streams are dropped (which
//! cancels DataFusion's work and returns its memory to the pool), and the memory limit of the
//! query's own pool. A request whose client goes away is dropped by the server, which drops
//! this future the same way; [`InFlight`] counts both.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use futures::TryStreamExt;

use crate::error::{Result, ServingError};

/// The bounds of one query.
#[derive(Debug, Clone, Copy)]
pub struct QueryBounds {
    /// Rows returned at most.
    pub max_rows: usize,
    /// Wall time before the query is cancelled.
    pub timeout: Duration,
    /// The query's memory pool, in MB.
    pub memory_mb: u64,
}

/// A finished query.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The result schema.
    pub schema: SchemaRef,
    /// The rows (at most `max_rows`).
    pub batches: Vec<RecordBatch>,
    /// Whether more rows existed than were returned.
    pub truncated: bool,
    /// Time spent running it.
    pub elapsed: Duration,
}

impl Answer {
    /// Rows in the answer.
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(|b| b.num_rows()).sum()
    }
}

/// Queries running now, and how they ended.
#[derive(Debug, Default)]
pub struct QueryCounters {
    /// Queries running now.
    pub running: AtomicU64,
    /// Queries that finished with an answer.
    pub completed: AtomicU64,
    /// Queries stopped by their time limit.
    pub timed_out: AtomicU64,
    /// Queries dropped before they finished (the client went away).
    pub cancelled: AtomicU64,
}

/// Marks a query running until dropped; a drop before [`InFlight::finish`] is a cancellation.
pub struct InFlight {
    counters: Arc<QueryCounters>,
    finished: bool,
}

impl InFlight {
    fn start(counters: &Arc<QueryCounters>) -> Self {
        counters.running.fetch_add(1, Ordering::Relaxed);
        InFlight {
            counters: counters.clone(),
            finished: false,
        }
    }

    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.counters.running.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The threads queries run on, apart from the ones serving HTTP: a query that keeps its
/// threads busy cannot delay the timers, health checks and disconnect detection of the server
/// (DataFusion's advice for CPU-bound work inside a network service).
pub struct QueryRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl QueryRuntime {
    /// A runtime of `threads` workers.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("strata-query")
            .enable_all()
            .build()?;
        Ok(QueryRuntime {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.runtime.as_ref().map(|r| r.handle())
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropped from async code when the server stops: do not block there.
        if let Some(r) = self.runtime.take() {
            r.shutdown_background();
        }
    }
}

/// Aborts the spawned query when the request's future is dropped (timeout or a departed client).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `frame` within `bounds` on `runtime`.
pub async fn run(
    frame: DataFrame,
    bounds: QueryBounds,
    counters: &Arc<QueryCounters>,
    runtime: &QueryRuntime,
) -> Result<Answer> {
    let started = Instant::now();
    let in_flight = InFlight::start(counters);
    let frame = frame
        .limit(0, Some(bounds.max_rows.saturating_add(1)))
        .map_err(plan_error)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let Some(handle) = runtime.handle() else {
        return Err(ServingError::Execution {
            message: "the query runtime is shut down".into(),
        });
    };
    let task = AbortOnDrop(handle.spawn(async move {
        let stream = frame.execute_stream().await.map_err(exec_error(bounds))?;
        stream
            .try_collect::<Vec<RecordBatch>>()
            .await
            .map_err(exec_error(bounds))
    }));
    let work = async move {
        let mut task = task;
        match (&mut task.0).await {
            Ok(result) => result,
            Err(e) => Err(ServingError::Execution {
                message: format!("the query task ended: {e}"),
            }),
        }
    };
    let outcome = tokio::time::timeout(bounds.timeout, work).await;
    let batches = match outcome {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            in_flight.finish();
            return Err(e);
        }
        Err(_) => {
            in_flight.finish();
            counters.timed_out.fetch_add(1, Ordering::Relaxed);
            return Err(ServingError::Timeout {
                limit_ms: u64::try_from(bounds.timeout.as_millis()).unwrap_or(u64::MAX),
            });
        }
    };
    in_flight.finish();
    counters.completed.fetch_add(1, Ordering::Relaxed);
    let (batches, truncated) = cut(batches, bounds.max_rows);
    Ok(Answer {
        schema,
        batches,
        truncated,
        elapsed: started.elapsed(),
    })
}

/// Keeps the first `max_rows` rows.
fn cut(batches: Vec<RecordBatch>, max_rows: usize) -> (Vec<RecordBatch>, bool) {
    let mut left = max_rows;
    let mut kept = Vec::with_capacity(batches.len());
    let mut truncated = false;
    for batch in batches {
        if left == 0 {
            truncated |= batch.num_rows() > 0;
            continue;
        }
        if batch.num_rows() > left {
            kept.push(batch.slice(0, left));
            truncated = true;
            left = 0;
        } else {
            left -= batch.num_rows();
            kept.push(batch);
        }
    }
    (kept, truncated)
}

pub(crate) fn plan_error(e: DataFusionError) -> ServingError {
    ServingError::Plan {
        message: e.strip_backtrace(),
    }
}

fn exec_error(bounds: QueryBounds) -> impl Fn(DataFusionError) -> ServingError {
    move |e| match e.find_root() {
        DataFusionError::ResourcesExhausted(m) => ServingError::MemoryLimit {
            limit_mb: bounds.memory_mb,
            message: m.clone(),
        },
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => plan_error(e),
        _ => ServingError::Execution {
            message: e.strip_backtrace(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn batch(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))]).unwrap()
    }

    #[test]
    fn cut_keeps_exactly_max_rows_and_says_so() {
        let (kept, truncated) = cut(vec![batch(3), batch(3), batch(3)], 5);
        assert_eq!(kept.iter().map(|b| b.num_rows()).sum::<usize>(), 5);
        assert!(truncated);
        let (kept, truncated) = cut(vec![batch(3), batch(2)], 5);
        assert_eq!(kept.len(), 2);
        assert!(!truncated);
    }
}
