//! The status line: while recording on a terminal, one line on stderr,
//! refreshed about once a second (elapsed time, rows, the tree's CPU and
//! RSS, file size, dropped rows). Log lines clear it before they print.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Clears the current terminal line (used by the logger too).
pub const CLEAR: &str = "\r\x1b[K";

/// Whether stderr is a terminal (then the status line is shown).
pub fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

pub struct Status {
    start: Instant,
    last: Option<Instant>,
    path: PathBuf,
    rows: u64,
    shown: bool,
}

impl Status {
    /// None when turned off (`--quiet`) or stderr is not a terminal.
    pub fn new(quiet: bool, path: PathBuf) -> Option<Self> {
        (!quiet && on_terminal()).then(|| Status { start: Instant::now(), last: None, path, rows: 0, shown: false })
    }

    /// After a sample: `cpu` (% of one core) and `rss` (bytes) of the tree,
    /// NaN if missing; `dropped` rows so far.
    pub fn sample(&mut self, cpu: f64, rss: f64, dropped: u64) {
        self.rows += 1;
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        self.last = Some(Instant::now());
        let e = self.start.elapsed().as_secs();
        let size = std::fs::metadata(&self.path).map(|m| m.len() as f64 / 1048576.0).unwrap_or(f64::NAN);
        let num = |v: f64, unit: &str| if v.is_finite() { format!("{v:.1} {unit}") } else { "–".into() };
        let line = format!(
            "{CLEAR}messer {:02}:{:02}:{:02}  rows {}  CPU {}  RSS {}  file {}  dropped {dropped}",
            e / 3600,
            e / 60 % 60,
            e % 60,
            self.rows,
            num(cpu, "%"),
            num(rss / 1048576.0, "MiB"),
            num(size, "MiB"),
        );
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
        self.shown = true;
    }
}

impl Drop for Status {
    fn drop(&mut self) {
        if self.shown {
            let _ = std::io::stderr().write_all(CLEAR.as_bytes());
        }
    }
}
