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
    // Launched: held until the baseline read, so all of it is recorded
    // however long messer takes to start (under emulation, seconds).
    let status = messer()
        .args(["--mode", "ebpf", "--runq-latency", "--interval", "0.5", "-o"])
        .arg(&out)
        .arg("--")
        .arg(workload_bin())
        .args(["pingpong", "--pairs", "3", "--seconds", "3"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
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

/// A thread kept off its CPU for known lengths: a SCHED_FIFO hog on its
/// CPU spins 2, 20 and 200 ms while the thread stays runnable. Each wait
/// lies between the hog's spin (its own clock: the thread cannot run then)
/// and the gap the thread's own clock saw (which also holds the interrupts
/// around the switches). Each wait is in a bucket that meets that span; the
/// window's longest wait, kept exactly, is in it too (so within one bucket
/// of the truth); the waits counted over the recording are the threads'
/// switch-ins (schedstat's pcount).
#[test]
#[ignore = "needs root"]
fn runq_latency_of_a_thread_starved_for_known_lengths() {
    if !require_root("runq_latency_of_a_thread_starved_for_known_lengths") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let o = messer()
        .args(["--mode", "ebpf", "--runq-latency", "--interval", "0.5", "-o"])
        .arg(&out)
        .arg("--")
        .arg(workload_bin())
        .args(["starve", "--waits-ms", "2,20,200", "--gap-ms", "700"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(o.status.success(), "messer or the workload failed (stderr above)");
    let truth: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the workload's JSON");
    let pairs = |k: &str| -> Vec<(f64, f64)> {
        truth[k].as_array().unwrap().iter().map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap())).collect()
    };
    // (end in s of CLOCK_MONOTONIC, length in µs) of each gap the victim saw.
    let gaps: Vec<(f64, f64)> = pairs("gaps").into_iter().map(|(end, len)| (end / 1e9, len / 1e3)).collect();
    let spins = pairs("spins");
    let cols = ["monotime", "proc_runq_latency_p50_us", "proc_runq_latency_p90_us", "proc_runq_latency_p99_us"];
    let t = read_table(
        &out,
        "messer_timeseries",
        &[&cols[..], &["proc_runq_latency_max_us", "proc_runq_waits_unresolved"]].concat(),
    );
    let h = read_table(&out, "messer_runq_latency", &["monotime", "bucket_lower_us", "bucket_upper_us", "waits"]);
    let mono = column(&t, "monotime");
    let max = column(&t, "proc_runq_latency_max_us");
    let (hm, lo, hi, n) =
        (column(&h, "monotime"), column(&h, "bucket_lower_us"), column(&h, "bucket_upper_us"), column(&h, "waits"));
    // The window of a moment: from the previous row's monotime to its own.
    let window_of = |at: f64| mono.iter().position(|m| m.is_some_and(|m| m >= at));
    assert_eq!(spins.len(), 3, "the hog spun three times");
    for (start, end) in spins {
        let (start, end) = (start / 1e9, end / 1e9);
        let spin_us = (end - start) * 1e6;
        // The victim's gap that holds the spin: the wait.
        let &(gap_end, wait_us) = gaps
            .iter()
            .find(|(e, len)| *e >= end && e - len / 1e6 <= start)
            .unwrap_or_else(|| panic!("no gap of the victim holds the spin {start}..{end}: {gaps:?}"));
        // Counted by the first read that sees it: the window in which it ended
        // or, if that read's flush came just before, the next.
        let w = window_of(gap_end).expect("a window after the wait");
        let found = (w..(w + 2).min(mono.len())).find_map(|i| {
            let m = mono[i];
            (0..hm.len())
                .find(|&j| hm[j] == m && n[j].unwrap() >= 1.0 && lo[j].unwrap() <= wait_us && hi[j].unwrap() > spin_us)
                .map(|j| (i, lo[j].unwrap(), hi[j].unwrap()))
        });
        let (i, b_lo, b_hi) = found.unwrap_or_else(|| {
            panic!(
                "no bucket of window {w} or the next meets the wait's span: spin {spin_us:.0} to gap {wait_us:.0} us"
            )
        });
        // The longest gap the victim saw in that window.
        let since = if i == 0 { f64::MIN } else { mono[i - 1].unwrap() };
        let longest =
            gaps.iter().filter(|(e, _)| *e > since - 0.01 && *e <= mono[i].unwrap()).map(|g| g.1).fold(0.0, f64::max);
        let m = max[i].expect("a max where waits were counted");
        eprintln!(
            "spin {spin_us:.0} us, gap {wait_us:.0} us: in bucket [{b_lo:.0}, {b_hi:.0}) of window {i}; \
             window p50 {:?} p90 {:?} p99 {:?} max {m:.0} us (longest gap {longest:.0} us)",
            column(&t, cols[1])[i],
            column(&t, cols[2])[i],
            column(&t, cols[3])[i],
        );
        assert!(
            spin_us - 1.0 <= m && m <= longest + 1.0,
            "window {i}: max {m} us, spin {spin_us} us, longest gap {longest} us"
        );
    }
    let counted: f64 =
        n.iter().flatten().sum::<f64>() + column(&t, "proc_runq_waits_unresolved").iter().flatten().sum::<f64>();
    let p = &truth["pcount"];
    let switch_ins = ["victim", "hog", "main"].iter().map(|k| p[k].as_f64().unwrap()).sum::<f64>();
    eprintln!("waits counted {counted}, switch-ins {switch_ins} ({p})");
    // Each thread's switch-ins over its life, read as its last act: the
    // main thread's few before messer's baseline released it are not
    // recorded, each thread's after its last reading are.
    assert!((counted - switch_ins).abs() <= 4.0, "{counted} waits counted vs {switch_ins} switch-ins");
}
