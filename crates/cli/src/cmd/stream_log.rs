//! What a streaming run prints: where it resumed, each commit, and a progress line (rate,
//! totals) every few seconds — the runtime's hooks as log lines.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use strata_runtime::{BatchStats, CommitReport, DriverHooks, RunInfo};

/// Log lines of a streaming run.
pub struct StreamLog {
    label: String,
    target: String,
    started: Instant,
    last_report: Mutex<Instant>,
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    quarantined: AtomicU64,
    /// Print a line per commit (off for sources that commit after every small batch).
    commit_lines: bool,
}

impl StreamLog {
    /// Lines prefixed by `label`, for a run writing into `target`.
    pub fn new(label: String, target: String) -> Self {
        StreamLog {
            label,
            target,
            started: Instant::now(),
            last_report: Mutex::new(Instant::now()),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            commit_lines: true,
        }
    }

    /// No line per commit: only the start and the progress lines.
    pub fn without_commit_lines(mut self) -> Self {
        self.commit_lines = false;
        self
    }
}

impl DriverHooks for StreamLog {
    fn on_start(&self, info: &RunInfo) {
        println!(
            "{}: {} → {}{}",
            self.label,
            info.detail,
            self.target,
            if info.resumed {
                " (resuming at the committed positions)"
            } else {
                ""
            }
        );
    }

    fn on_batch(&self, stats: &BatchStats) {
        let rows_in = self.rows_in.fetch_add(stats.rows_in, Ordering::Relaxed) + stats.rows_in;
        self.rows_out.fetch_add(stats.rows_out, Ordering::Relaxed);
        self.quarantined
            .fetch_add(stats.quarantined, Ordering::Relaxed);
        let Ok(mut last) = self.last_report.lock() else {
            return;
        };
        if last.elapsed() >= Duration::from_secs(5) {
            *last = Instant::now();
            let secs = self.started.elapsed().as_secs_f64().max(1e-9);
            tracing::info!(
                records_in = rows_in,
                rows_out = self.rows_out.load(Ordering::Relaxed),
                quarantined = self.quarantined.load(Ordering::Relaxed),
                rate = format!("{:.0}/s", rows_in as f64 / secs),
                "{}: streaming",
                self.label
            );
        }
    }

    fn on_commit(&self, report: &CommitReport, elapsed: Duration) {
        if !self.commit_lines {
            return;
        }
        println!(
            "committed {} rows, {} quarantined; {} ({} ms)",
            report.rows,
            report.quarantined,
            report.covers,
            elapsed.as_millis()
        );
    }
}
