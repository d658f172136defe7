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

/// When the system booted, in s since the epoch (CLOCK_REALTIME minus
/// CLOCK_BOOTTIME, as messer takes it), and the clock ticks per second of
/// /proc's times.
pub fn boot_unixtime() -> f64 {
    let read = |clock| {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: valid clock and pointer.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    read(libc::CLOCK_REALTIME) - read(libc::CLOCK_BOOTTIME)
}

/// /proc's clock ticks per second (USER_HZ).
pub fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
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
    /// Cumulative run-queue delay of the threads (schedstat), ns.
    pub run_delay_ns: u64,
}

/// Reads the truth file written by `messer-workload ... --truth FILE`.
pub fn read_truth(path: &Path) -> Vec<TruthSample> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("truth file {}: {e}", path.display()));
    text.lines()
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().expect("truth number")).collect();
            TruthSample { t: v[0], cpu_ns: v[1], nvcsw: v[2], nivcsw: v[3], run_delay_ns: v[4] }
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

/// How much `field` of the truth changed between the two samples around
/// `t`: how far the interpolated value can be off (a sample that took too
/// long was dropped, so a gap can be longer than the sampling period).
pub fn truth_slack(samples: &[TruthSample], t: u64, field: fn(&TruthSample) -> u64) -> f64 {
    let i = samples.partition_point(|s| s.t <= t);
    match (samples.get(i.wrapping_sub(1)), samples.get(i)) {
        (Some(a), Some(b)) => field(b).abs_diff(field(a)) as f64,
        _ => f64::INFINITY,
    }
}

/// How long `run` lets a command take: $MESSER_TEST_RUN_TIMEOUT seconds,
/// else 300 (a test's messer runs for seconds natively, under a minute in
/// the emulated kernel test).
fn run_limit() -> std::time::Duration {
    let s = std::env::var("MESSER_TEST_RUN_TIMEOUT").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    std::time::Duration::from_secs(s)
}

/// Reads a child's stream to its end on a thread of its own.
fn drain<R: std::io::Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs a command to completion and returns its output (both streams
/// captured). One that has not ended within `run_limit` gets SIGTERM (and
/// SIGKILL 15 s later), and the test fails with what it printed so far:
/// a hang is reported, never waited on.
pub fn run(mut c: Command) -> Output {
    let mut child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("run command");
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let limit = run_limit();
    let status = match rx.recv_timeout(limit) {
        Ok(s) => s.expect("wait for command"),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (the waiter
            // thread has not returned).
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let ended = rx.recv_timeout(std::time::Duration::from_secs(15)).is_ok();
            if !ended {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = rx.recv();
            }
            let err = err.join().unwrap_or_default();
            panic!(
                "{:?} did not end within {} s ({}); its stderr: {}",
                c.get_program(),
                limit.as_secs(),
                if ended { "ended on SIGTERM" } else { "killed" },
                String::from_utf8_lossy(&err)
            );
        }
    };
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Starts messer with `args` and waits until it has started recording (its
/// "recording ..." log line): from then on its probes are attached.
/// stderr keeps being drained into the returned buffer.
pub fn start_recording(args: &[&str]) -> (Child, std::sync::Arc<std::sync::Mutex<String>>) {
    use std::io::BufRead as _;
    let mut child = messer().args(args).stderr(Stdio::piped()).spawn().expect("start messer");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(" recording ")
                && let Some(t) = tx.take()
            {
                let _ = t.send(());
            }
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    if rx.recv_timeout(std::time::Duration::from_secs(30)).is_err() {
        let _ = child.kill();
        panic!("messer did not start recording: {}", log.lock().unwrap());
    }
    (child, log)
}

/// Sends SIGINT to `child` and waits for it; returns its exit code.
pub fn interrupt(mut child: Child) -> Option<i32> {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    child.wait().expect("wait for messer").code()
}

/// The workload binary under another name (a symlink in `dir`): its
/// processes then have that comm.
pub fn workload_named(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::os::unix::fs::symlink(workload_bin(), &p).expect("symlink the workload");
    p
}

/// A launched workload's whole CPU time, its children's and its exit's
/// teardown included (which getrusage at its end cannot see: 0.2 ms
/// natively, 5 to 16 ms under QEMU's emulation): the workload moves itself
/// into a cgroup made by the test at its start ($MESSER_WORKLOAD_CGROUP), so
/// the cgroup's usage once it has been reaped, plus its CPU before the
/// move, is the truth. Where in the write to cgroup.procs the kernel moves
/// the charge is not known, so the truth is an interval: the CPU before
/// that write to the CPU after it (0.1 to 0.2 ms wide natively, 1 to 8 ms
/// under emulation). Needs root.
pub struct CgroupTruth {
    cgroup: servers::Cgroup,
}

impl CgroupTruth {
    pub fn new(name: &str) -> CgroupTruth {
        CgroupTruth { cgroup: servers::Cgroup::new(name) }
    }

    /// Has the workload launched by `c` (directly, or by messer) move itself in.
    pub fn apply(&self, c: &mut Command) {
        c.env("MESSER_WORKLOAD_CGROUP", &self.cgroup.path);
    }

    /// (low, high) CPU seconds, from the workload's JSON, once it has been reaped.
    pub fn seconds(&self, stdout: &[u8]) -> (f64, f64) {
        let v: serde_json::Value = serde_json::from_slice(stdout).expect("workload prints its truth as JSON");
        let ns = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k} in the workload's JSON")) / 1e9;
        let usage = self.cgroup.usage_usec() as f64 / 1e6;
        (usage + ns("cpu_before_move_ns"), usage + ns("cpu_after_move_ns"))
    }
}

/// CPU seconds a workload reported for itself (getrusage user + system).
pub fn reported_cpu_s(stdout: &[u8]) -> f64 {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("workload prints its truth as JSON");
    v["user_s"].as_f64().expect("user_s") + v["system_s"].as_f64().expect("system_s")
}
pub mod servers;
