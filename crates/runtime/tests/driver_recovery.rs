//! The driver's exactly-once contract as a property: a source that fails at random points, is
//! restarted from what the committer holds (its position and pipeline state) and re-delivers
//! from there, and a committer that fails at random commits, together give exactly the committed
//! output of one clean run — same rows, same quarantine, same order.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use proptest::prelude::*;
use strata_core::{BuildContext, Pipeline};
use strata_runtime::{
    CommitPolicy, CommitReport, Committed, Committer, Driver, DriverOptions, Position, Result,
    Sink, Source, StateUpdate, StopReason,
};

mod common;
use common::{ScriptedLog, events, failure, spec};

/// What the "table" holds: committed rows and quarantine, the position and the state.
#[derive(Default)]
struct Store {
    rows: Vec<RecordBatch>,
    quarantine: Vec<RecordBatch>,
    position: Option<Position>,
    /// The committed state: a full state, then the deltas after it.
    chain: Vec<Vec<u8>>,
}

/// Stages in memory; a commit moves the staged batches into the store atomically; fails once at
/// commit number `fail_at` (before applying it) if set.
struct MemorySink {
    store: Arc<Mutex<Store>>,
    rows: Vec<RecordBatch>,
    quarantine: Vec<RecordBatch>,
    commits: usize,
    fail_at: Option<usize>,
    /// Keeps state deltas (the driver then hands it deltas between full states).
    deltas: bool,
}

#[async_trait::async_trait]
impl Sink for MemorySink {
    async fn write(&mut self, rows: &RecordBatch) -> Result<()> {
        self.rows.push(rows.clone());
        Ok(())
    }

    async fn write_quarantine(&mut self, rows: &RecordBatch) -> Result<()> {
        self.quarantine.push(rows.clone());
        Ok(())
    }
}

#[async_trait::async_trait]
impl Committer for MemorySink {
    async fn committed(&mut self) -> Result<Committed> {
        let s = self.store.lock().map_err(|_| failure("poisoned"))?;
        Ok(Committed {
            position: s.position.clone(),
            state: s.chain.first().cloned(),
            state_deltas: s.chain.iter().skip(1).cloned().collect(),
        })
    }

    fn accepts_state_deltas(&self) -> bool {
        self.deltas
    }

    async fn commit(&mut self, position: &Position, state: StateUpdate) -> Result<CommitReport> {
        self.commits += 1;
        if self.fail_at == Some(self.commits) {
            return Err(failure("the commit broke"));
        }
        let mut s = self.store.lock().map_err(|_| failure("poisoned"))?;
        s.rows.append(&mut self.rows);
        s.quarantine.append(&mut self.quarantine);
        s.position = Some(position.clone());
        assert!(
            !state.delta || self.deltas,
            "a delta for a committer that keeps none"
        );
        if !state.delta {
            s.chain.clear();
        }
        s.chain.push(state.bytes);
        Ok(CommitReport::default())
    }
}

/// Runs to the end through restarts; `failures` are (source call, commit number) per attempt.
fn run(
    records: &Arc<Vec<String>>,
    sizes: &[usize],
    every_rows: u64,
    failures: &[(Option<usize>, Option<usize>)],
    deltas: bool,
) -> (Vec<RecordBatch>, Vec<RecordBatch>, usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Arc::new(Mutex::new(Store::default()));
    let mut attempts = 0;
    loop {
        let (source_fail, commit_fail) = failures.get(attempts).copied().unwrap_or((None, None));
        attempts += 1;
        let source = ScriptedLog {
            records: records.clone(),
            next: 0,
            sizes: sizes.to_vec(),
            calls: 0,
            fail_at: source_fail,
        };
        let pipeline =
            Pipeline::build(&spec(), source.schema(), &BuildContext::default()).expect("pipeline");
        let sink = MemorySink {
            store: store.clone(),
            rows: Vec::new(),
            quarantine: Vec::new(),
            commits: 0,
            fail_at: commit_fail,
            deltas,
        };
        let options = DriverOptions {
            commit: CommitPolicy::every(std::time::Duration::MAX, every_rows),
            channel_depth: 2,
            stop_when_idle: None,
            crash_after_commits: None,
        };
        let outcome =
            rt.block_on(Driver::new(source, pipeline, sink, options).run(std::future::pending()));
        match outcome {
            Ok(report) => {
                assert_eq!(report.stopped, StopReason::EndOfInput);
                break;
            }
            Err(e) => assert!(e.to_string().contains("scripted failure"), "{e}"),
        }
        assert!(attempts < 50, "the run never finished");
    }
    let s = store.lock().expect("store");
    (s.rows.clone(), s.quarantine.clone(), attempts)
}

fn concat(batches: &[RecordBatch]) -> Option<RecordBatch> {
    let first = batches.first()?;
    Some(arrow::compute::concat_batches(&first.schema(), batches).expect("concat"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn failures_restarts_and_redelivery_commit_what_one_clean_run_commits(
        sizes in proptest::collection::vec(1usize..400, 1..6),
        every_rows in 1u64..900,
        failures in proptest::collection::vec(
            (proptest::option::of(1usize..30), proptest::option::of(1usize..6)),
            0..5,
        ),
        deltas in any::<bool>(),
    ) {
        let records = Arc::new(events());
        let (clean_rows, clean_q, _) = run(&records, &[512], u64::MAX, &[], false);
        let (rows, q, _) = run(&records, &sizes, every_rows, &failures, deltas);
        prop_assert_eq!(concat(&rows), concat(&clean_rows));
        prop_assert_eq!(concat(&q), concat(&clean_q));
    }
}

/// Commits of one clean run over `records` in batches of 50 with `policy`.
fn commits_with(records: Vec<String>, policy: CommitPolicy) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let n = records.len();
    let source = ScriptedLog {
        records: Arc::new(records),
        next: 0,
        sizes: vec![50; n.div_ceil(50)],
        calls: 0,
        fail_at: None,
    };
    let pipeline =
        Pipeline::build(&spec(), source.schema(), &BuildContext::default()).expect("pipeline");
    let sink = MemorySink {
        store: Arc::new(Mutex::new(Store::default())),
        rows: Vec::new(),
        quarantine: Vec::new(),
        commits: 0,
        fail_at: None,
        deltas: false,
    };
    let options = DriverOptions {
        commit: policy,
        channel_depth: 2,
        stop_when_idle: None,
        crash_after_commits: None,
    };
    let report = rt
        .block_on(Driver::new(source, pipeline, sink, options).run(std::future::pending()))
        .expect("run");
    report.commits
}

#[test]
fn a_byte_bound_commits_big_records_before_the_row_bound() {
    // 1,500 records of ~64 KiB (an extra field the pipeline ignores): ~96 MiB of input that a
    // row bound of 100,000 would stage whole.
    let pad = "x".repeat(64 << 10);
    let big: Vec<String> = events()
        .into_iter()
        .map(|e| match e.strip_suffix('}') {
            Some(body) => format!(r#"{body},"pad":"{pad}"}}"#),
            None => e,
        })
        .collect();
    let rows_only = CommitPolicy::every(std::time::Duration::MAX, 100_000);
    assert_eq!(
        commits_with(big.clone(), rows_only),
        1,
        "one commit at the end"
    );
    let bounded = rows_only.with_max_bytes(8 << 20);
    let commits = commits_with(big, bounded);
    assert!(
        (10..=16).contains(&commits),
        "{commits} commits for ~96 MiB with an 8 MiB bound"
    );
}
