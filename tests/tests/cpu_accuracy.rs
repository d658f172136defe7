//! Every full window's CPU figure is within 2 % of a core of the kernel's
//! own truth (the sum of the target's threads' schedstat over that window),
//! in both modes, and the file reads back with h5py and pandas.

use messer_tests::*;

const COLUMNS: &[&str] = &[
    "monotime",
    "window_seconds",
    "proc_pid",
    "proc_cpu_util_percent_total",
    "proc_cpu_util_percent_user",
    "proc_cpu_util_percent_system",
];

/// Records the busy workload with `args` in `mode`; returns the worst error of
/// a full window in percent of a core.
fn worst_window_error(mode: &str, args: &[&str]) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let mut child = workload(args);
    let pid = child.id();
    let truth = Truth::start(pid, 1000);
    let status = messer()
        .args(["--pid", &pid.to_string(), "--mode", mode, "--interval", "0.5", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "messer failed: {status}");
    let samples = truth.finish();
    assert!(child.wait().unwrap().success());

    let t = read_table(&out, "messer_timeseries", COLUMNS);
    assert_eq!(t["_attrs"]["messer_mode"], mode);
    assert_eq!(t["_isotime_len"], 26);
    let mono = column(&t, "monotime");
    let win = column(&t, "window_seconds");
    let total = column(&t, "proc_cpu_util_percent_total");
    let user = column(&t, "proc_cpu_util_percent_user");
    let system = column(&t, "proc_cpu_util_percent_system");
    assert!(column(&t, "proc_pid").iter().all(|p| *p == Some(pid as f64)));
    assert!(mono.len() >= 8, "expected ~10 windows in 5 s, got {}", mono.len());

    let mut worst: f64 = 0.0;
    let mut checked = 0;
    // The last row is the partial window in which the target exited.
    for i in 0..mono.len() - 1 {
        let (m, w) = (mono[i].unwrap(), win[i].unwrap());
        assert!((w - 0.5).abs() < 0.01, "window {i} lasted {w} s");
        let end = (m * 1e9) as u64;
        let start = end - (w * 1e9) as u64;
        let (Some(a), Some(b)) = (truth_at(&samples, start), truth_at(&samples, end)) else { continue };
        let truth = (b - a) / (w * 1e9) * 100.0;
        let got = total[i].unwrap();
        worst = worst.max((got - truth).abs());
        assert!((got - truth).abs() <= 2.0, "{mode} window {i}: messer {got:.2} % vs truth {truth:.2} %");
        if let (Some(u), Some(s)) = (user[i], system[i]) {
            assert!((u + s - got).abs() < 1e-6, "user + system != total in window {i}");
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} windows covered by truth");
    eprintln!("{mode} {args:?}: worst full-window error {worst:.3} % of a core over {checked} windows");
    worst
}

#[test]
fn one_busy_thread_ebpf() {
    if require_root("one_busy_thread_ebpf") {
        worst_window_error("ebpf", &["busy", "--threads", "1", "--duty", "1", "--seconds", "5"]);
    }
}

#[test]
fn four_threads_half_duty_ebpf() {
    if require_root("four_threads_half_duty_ebpf") {
        worst_window_error("ebpf", &["busy", "--threads", "4", "--duty", "0.5", "--seconds", "5", "--period-ms", "20"]);
    }
}

#[test]
fn one_busy_thread_procfs() {
    worst_window_error("procfs", &["busy", "--threads", "1", "--duty", "1", "--seconds", "5"]);
}

#[test]
fn four_threads_half_duty_procfs() {
    worst_window_error("procfs", &["busy", "--threads", "4", "--duty", "0.5", "--seconds", "5", "--period-ms", "20"]);
}
