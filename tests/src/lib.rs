//! Helpers for messer's integration tests: finding the binaries and the
//! Python that reads files back, running workloads, sampling ground truth.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The messer binary under test: $MESSER_BIN, else target/release/messer.
pub fn messer_bin() -> PathBuf {
    let p =
        std::env::var_os("MESSER_BIN").map(PathBuf::from).unwrap_or_else(|| workspace().join("target/release/messer"));
    assert!(p.exists(), "{} missing: build it with `cargo build --release` (or run `cargo xtask test`)", p.display());
    p
}

/// The project's Python (with h5py, pandas, tables): $MESSER_PYTHON, else .venv.
pub fn python() -> PathBuf {
    std::env::var_os("MESSER_PYTHON").map(PathBuf::from).unwrap_or_else(|| workspace().join(".venv/bin/python"))
}

/// True when running as root; tests that load BPF need it. Under CI a
/// missing privilege is a failure, elsewhere the test is skipped.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{test} must run as root in CI");
    eprintln!("skipping {test}: needs root");
    false
}

/// A `messer` command.
pub fn messer() -> Command {
    let mut c = Command::new(messer_bin());
    c.stdin(Stdio::null());
    c
}

/// The workload binary, built beside the test executable (target/<profile>/).
pub fn workload_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
    dir.join("messer-workload")
}

/// Starts the test workload with `args`; stdout is piped (ground truth).
pub fn workload(args: &[&str]) -> Child {
    Command::new(workload_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("start messer-workload")
}

/// Reads `columns` of `table` from an HDF5 file with h5py and pandas (which
/// must agree): returns the JSON object the reader prints.
pub fn read_table(path: &Path, table: &str, columns: &[&str]) -> serde_json::Value {
    let script = workspace().join("tests/py/read_table.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(path)
        .arg(table)
        .args(columns)
        .output()
        .expect("run python (run `cargo xtask setup` to create .venv)");
    assert!(out.status.success(), "reading {} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("reader prints JSON")
}

/// A column as floats (None for missing values).
pub fn column(v: &serde_json::Value, name: &str) -> Vec<Option<f64>> {
    v[name].as_array().unwrap_or_else(|| panic!("no column {name}")).iter().map(|x| x.as_f64()).collect()
}

/// CLOCK_MONOTONIC in ns (the clock messer's `monotime` uses).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid clock and pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One sample of the workload's exact truth (see `--truth`).
#[derive(Debug, Clone, Copy)]
pub struct TruthSample {
    /// CLOCK_MONOTONIC ns.
    pub t: u64,
    /// Cumulative on-CPU ns of the whole process.
    pub cpu_ns: u64,
    /// Cumulative voluntary and involuntary context switches.
    pub nvcsw: u64,
    pub nivcsw: u64,
}

/// Reads the truth file written by `messer-workload ... --truth FILE`.
pub fn read_truth(path: &Path) -> Vec<TruthSample> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("truth file {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().expect("truth number")).collect();
            TruthSample { t: v[0], cpu_ns: v[1], nvcsw: v[2], nivcsw: v[3] }
        })
        .collect()
}

/// `field` of the truth at `t` by linear interpolation, if `t` is covered.
pub fn truth_at(samples: &[TruthSample], t: u64, field: fn(&TruthSample) -> u64) -> Option<f64> {
    let i = samples.partition_point(|s| s.t <= t);
    if i == 0 || i >= samples.len() {
        return None;
    }
    let (a, b) = (&samples[i - 1], &samples[i]);
    let (v0, v1) = (field(a) as f64, field(b) as f64);
    Some(v0 + (v1 - v0) * (t - a.t) as f64 / (b.t - a.t) as f64)
}

/// Runs a command to completion and returns its output.
pub fn run(mut c: Command) -> Output {
    c.output().expect("run command")
}
