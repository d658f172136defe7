//! A recording ends cleanly on SIGINT, SIGTERM and SIGHUP: exit 0, every sample
//! written, the file readable; and when the target exits, the last partial
//! window is written.

use messer_tests::*;

fn stop_with(signal: i32, mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let mut target = workload(&["busy", "--threads", "1", "--duty", "0.2", "--seconds", "30"]);
    let mut rec = messer()
        .args(["--pid", &target.id().to_string(), "--mode", mode, "--interval", "0.2", "-o"])
        .arg(&out)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, signal) };
    let status = rec.wait().unwrap();
    let _ = target.kill();
    let _ = target.wait();
    assert_eq!(status.code(), Some(0), "signal {signal}");
    let t = read_table(&out, "messer_timeseries", &["monotime", "proc_cpu_util_percent_total"]);
    let rows = t["_rows"].as_u64().unwrap();
    // ~1.5 s at 0.2 s: 7 full windows plus the partial one ended by the signal.
    assert!((6..=9).contains(&rows), "{rows} rows");
    let cpu = column(&t, "proc_cpu_util_percent_total");
    assert!(cpu.iter().all(|v| v.is_some()), "no missing totals: {cpu:?}");
}

#[test]
fn sigint_procfs() {
    stop_with(libc::SIGINT, "procfs");
}

#[test]
fn sighup_procfs() {
    stop_with(libc::SIGHUP, "procfs");
}

#[test]
#[ignore = "needs root"]
fn sigterm_ebpf() {
    if require_root("sigterm_ebpf") {
        stop_with(libc::SIGTERM, "ebpf");
    }
}

#[test]
fn target_exit_writes_the_partial_window() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let mut target = workload(&["busy", "--threads", "1", "--seconds", "1.3"]);
    let status =
        messer().args(["--pid", &target.id().to_string(), "--mode", "procfs", "-o"]).arg(&out).status().unwrap();
    assert!(target.wait().unwrap().success());
    assert_eq!(status.code(), Some(0));
    let t = read_table(&out, "messer_timeseries", &["window_seconds"]);
    let w = column(&t, "window_seconds");
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w[2].unwrap() < 0.5, "last window is partial: {w:?}");
}
