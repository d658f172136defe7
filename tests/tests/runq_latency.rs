//! `--runq-latency`: the distribution of the tree's run-queue waits per
//! window. Every wait is in one bucket, so per window the exact total wait
//! (the kernel's run_delay, `proc_runq_wait_percent`) lies between the sums
//! of the buckets' lower and upper edges, and the waits counted equal the
//! switch-ins; the percentiles are ordered and never above the longest wait.

use messer_tests::*;

#[test]
#[ignore = "needs root"]
fn runq_latency_buckets_hold_every_wait_of_a_window() {
    if !require_root("runq_latency_buckets_hold_every_wait_of_a_window") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let child = workload(&["pingpong", "--pairs", "3", "--seconds", "3", "--delay", "1"]);
    let pid = child.id().to_string();
    let status = messer()
        .args(["--pid", &pid, "--mode", "ebpf", "--runq-latency", "--interval", "0.5", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait_with_output().unwrap().status.success());
    let cols = [
        "monotime",
        "window_seconds",
        "proc_runq_wait_percent",
        "proc_runq_wait_mean_ms",
        "proc_runq_latency_p50_us",
        "proc_runq_latency_p90_us",
        "proc_runq_latency_p99_us",
        "proc_runq_latency_max_us",
        "proc_runq_waits_unresolved",
    ];
    let t = read_table(&out, "messer_timeseries", &cols);
    let h = read_table(&out, "messer_runq_latency", &["monotime", "bucket_lower_us", "bucket_upper_us", "waits"]);
    let col = |c: &str| column(&t, c);
    let (mono, win, wait, mean) =
        (col("monotime"), col("window_seconds"), col("proc_runq_wait_percent"), col("proc_runq_wait_mean_ms"));
    let (p50, p90, p99, max) = (
        col("proc_runq_latency_p50_us"),
        col("proc_runq_latency_p90_us"),
        col("proc_runq_latency_p99_us"),
        col("proc_runq_latency_max_us"),
    );
    let unresolved = col("proc_runq_waits_unresolved");
    let (hm, lo, hi, n) =
        (column(&h, "monotime"), column(&h, "bucket_lower_us"), column(&h, "bucket_upper_us"), column(&h, "waits"));
    let mut busy = 0;
    for i in 0..mono.len() {
        let (Some(m), Some(w), Some(pw)) = (mono[i], win[i], wait[i]) else { continue };
        let wait_us = pw / 100.0 * w * 1e6;
        let rows: Vec<usize> = (0..hm.len()).filter(|&j| hm[j] == Some(m)).collect();
        let count: f64 = rows.iter().map(|&j| n[j].unwrap()).sum();
        let low: f64 = rows.iter().map(|&j| n[j].unwrap() * lo[j].unwrap()).sum();
        let high: f64 = rows.iter().map(|&j| n[j].unwrap() * hi[j].unwrap()).sum();
        eprintln!(
            "window {i}: {count} waits, {wait_us:.0} us in [{low:.0}, {high:.0}]; p50 {:?} p90 {:?} p99 {:?} max {:?} us",
            p50[i], p90[i], p99[i], max[i]
        );
        assert_eq!(unresolved[i], Some(0.0), "window {i}: waits not told apart");
        if count == 0.0 {
            assert!(p50[i].is_none() && max[i].is_none(), "window {i}: percentiles without waits");
            continue;
        }
        busy += 1;
        // The exact total lies within the buckets' edges (1 µs of float slack).
        assert!(low - 1.0 <= wait_us && wait_us <= high + 1.0, "window {i}: {wait_us} us not in [{low}, {high}]");
        // The waits counted are the switch-ins (the mean's count).
        if let Some(mean_ms) = mean[i].filter(|m| *m > 0.0) {
            let waits = wait_us / 1e3 / mean_ms;
            assert!((waits - count).abs() <= 0.5 + 1e-6 * count, "window {i}: {count} in buckets vs {waits} waits");
        }
        let (a, b, c, d) = (p50[i].unwrap(), p90[i].unwrap(), p99[i].unwrap(), max[i].unwrap());
        assert!(a <= b && b <= c && c <= d, "window {i}: {a} {b} {c} {d}");
    }
    assert!(busy >= 4, "only {busy} windows with waits");
}

#[test]
fn runq_latency_in_procfs_mode_is_a_usage_error() {
    let o = messer().args(["--mode", "procfs", "--runq-latency", "--", "true"]).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--runq-latency") && err.trim().lines().count() == 1, "{err}");
}
