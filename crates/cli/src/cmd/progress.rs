//! What a run prints while it goes: the runtime's hooks as a progress bar (files, rows, rate,
//! ETA) on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use strata_runtime::{BatchStats, CommitReport, DriverHooks, RunInfo};

/// Progress of a run over files, one line (or bar step) per commit.
pub struct FileProgress {
    label: String,
    bar: Mutex<Option<ProgressBar>>,
    total: AtomicU64,
    done: AtomicU64,
    rows_in: AtomicU64,
    rows_out: AtomicU64,
    quarantined: AtomicU64,
    started: Instant,
}

impl FileProgress {
    /// Progress of `command` into `table`.
    pub fn new(table: &str, _source: &str) -> Self {
        FileProgress {
            label: format!("batch `{table}`"),
            bar: Mutex::new(None),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            rows_in: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            quarantined: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    fn println(&self, line: String) {
        match self.bar.lock().ok().and_then(|b| b.clone()) {
            Some(bar) => bar.println(line),
            None => println!("{line}"),
        }
    }

    /// Clears the bar.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
            bar.finish_and_clear();
        }
    }
}

impl DriverHooks for FileProgress {
    fn on_start(&self, info: &RunInfo) {
        let total = info.units_left.unwrap_or(0) as u64;
        self.total.store(total, Ordering::Relaxed);
        println!("{}: {}", self.label, info.detail);
        if std::io::stderr().is_terminal()
            && let Ok(mut slot) = self.bar.lock()
        {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} files · {msg} · ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            *slot = Some(bar);
        }
    }

    fn on_batch(&self, stats: &BatchStats) {
        self.rows_in.fetch_add(stats.rows_in, Ordering::Relaxed);
        self.rows_out.fetch_add(stats.rows_out, Ordering::Relaxed);
        self.quarantined
            .fetch_add(stats.quarantined, Ordering::Relaxed);
    }

    fn on_commit(&self, report: &CommitReport, _elapsed: Duration) {
        let units = report.units.max(1) as u64;
        let done = self.done.fetch_add(units, Ordering::Relaxed) + units;
        let total = self.total.load(Ordering::Relaxed).max(done);
        let (rows_in, rows_out, quarantined) = (
            self.rows_in.load(Ordering::Relaxed),
            self.rows_out.load(Ordering::Relaxed),
            self.quarantined.load(Ordering::Relaxed),
        );
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = rows_in as f64 / secs;
        let eta = secs / done as f64 * (total - done) as f64;
        self.println(format!(
            "[{done}/{total}] committed {}: {} rows, {} quarantined (total {rows_in} in, {rows_out} out, {quarantined} quarantined, {rate:.0} rows/s, ETA {eta:.0} s)",
            report.covers, report.rows, report.quarantined
        ));
        if let Some(bar) = self.bar.lock().ok().and_then(|b| b.clone()) {
            bar.set_position(done);
            bar.set_message(format!("{rows_in} rows in, {rate:.0} rows/s"));
        }
    }
}
