//! Progress display and the end-of-run summary. Workers only bump counters; this module
//! owns what the user sees.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Progress of one dataset: a bar on a terminal, a log line every 10 s otherwise.
pub(crate) struct Progress {
    bar: ProgressBar,
    name: String,
    total: u64,
    done: AtomicU64,
    cells: AtomicU64,
    start: Instant,
    last_logged: Mutex<Instant>,
    quiet: bool,
}

impl Progress {
    /// Starts the display for `name` with `total` tiles of which `done` are already committed.
    pub(crate) fn new(name: &str, total: u64, done: u64, quiet: bool) -> Progress {
        let show_bar = !quiet && std::io::stderr().is_terminal();
        let bar = if show_bar {
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} tiles  {msg}  ETA {eta}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        bar.set_position(done);
        Progress {
            bar,
            name: name.to_string(),
            total,
            done: AtomicU64::new(done),
            cells: AtomicU64::new(0),
            start: Instant::now(),
            last_logged: Mutex::new(Instant::now()),
            quiet,
        }
    }

    /// Records one finished tile of `cells` output cells.
    pub(crate) fn tile_done(&self, cells: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let cells = self.cells.fetch_add(cells, Ordering::Relaxed) + cells;
        let rate = cells as f64 / self.start.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_position(done);
        self.bar.set_message(format!("{} cells/s", human(rate)));
        // Without a terminal, a log line at most every 10 s keeps CI logs readable.
        if self.bar.is_hidden() && !self.quiet && done < self.total {
            let mut last = self.last_logged.lock().expect("progress lock");
            if last.elapsed().as_secs() >= 10 {
                *last = Instant::now();
                tracing::info!("{}: {done}/{} tiles, {} cells/s", self.name, self.total, human(rate));
            }
        }
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// 12345678.0 -> "12.3M", -2e9 -> "-2.0G"; inf and NaN as they are (a value sum can be
/// infinite when the data holds an infinity).
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let scales = [(1e9, "G"), (1e6, "M"), (1e3, "k")];
    let (d, s) = scales.into_iter().find(|(d, _)| v.abs() >= *d).unwrap_or((1.0, ""));
    format!("{:.1}{s}", v / d)
}

/// Peak resident memory of this process so far, in bytes.
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes the struct we own.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0 {
            ru.ru_maxrss as u64 * 1024
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn human_scales_negative_and_keeps_infinite_values() {
        assert_eq!(human(12_345_678.0), "12.3M");
        assert_eq!(human(-2e9), "-2.0G");
        assert_eq!(human(-1500.0), "-1.5k");
        assert_eq!(human(f64::INFINITY), "inf");
        assert_eq!(human(f64::NEG_INFINITY), "-inf");
        assert_eq!(human(f64::NAN), "NaN");
    }
}
