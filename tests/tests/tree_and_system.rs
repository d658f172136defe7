//! The whole tree and the machine: a shell with two busy children is three
//! processes whose CPU adds up to the children's exact truth, in both modes;
//! system figures match /proc; a 4000-thread process is read correctly.

use messer_tests::*;

/// Records `sh -c 'A & B & wait'` where A and B are busy workloads with
/// truth files; returns the table and both truths.
fn shell_with_two_children(mode: &str) -> (serde_json::Value, Vec<Vec<TruthSample>>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rec.h5");
    let w = workload_bin();
    let t1 = dir.path().join("t1.txt");
    let t2 = dir.path().join("t2.txt");
    let busy = |t: &std::path::Path| {
        format!(
            "{} busy --threads 1 --duty 0.5 --period-ms 20 --seconds 4 --delay 0.5 --truth {} >/dev/null",
            w.display(),
            t.display()
        )
    };
    let script = format!("{} & {} & wait", busy(&t1), busy(&t2));
    let mut sh = std::process::Command::new("sh").arg("-c").arg(&script).spawn().unwrap();
    let status = messer()
        .args(["--pid", &sh.id().to_string(), "--mode", mode, "--interval", "0.5", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(sh.wait().unwrap().success());
    let cols = [
        "monotime",
        "window_seconds",
        "proc_num_processes",
        "proc_num_threads",
        "proc_cpu_util_percent_total",
        "proc_mem_rss",
        "system_mem_total",
    ];
    let table = read_table(&out, "messer_timeseries", &cols);
    // Per process: three pids in a full window, each with its own CPU.
    let procs = read_table(&out, "messer_processes", &["monotime", "pid", "ppid", "comm", "cpu_util_percent_total"]);
    let mono = column(&procs, "monotime");
    let first_full = column(&table, "monotime")[2].unwrap();
    let pids: std::collections::HashSet<i64> = column(&procs, "pid")
        .iter()
        .zip(&mono)
        .filter(|(_, m)| m.unwrap() == first_full)
        .map(|(p, _)| p.unwrap() as i64)
        .collect();
    assert_eq!(pids.len(), 3, "{mode}: sh and two children in /messer_processes: {pids:?}");
    let info = read_table(&out, "messer_process_info", &["pid", "cmdline", "exe"]);
    let cmdlines: Vec<&str> = info["cmdline"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    assert_eq!(cmdlines.len(), 3, "{mode}: {cmdlines:?}");
    assert!(cmdlines.iter().any(|c| c.starts_with("sh -c") && c.ends_with("wait")), "{cmdlines:?}");
    assert_eq!(
        cmdlines.iter().filter(|c| c.contains("messer-workload busy")).count(),
        3,
        "sh's command line names them too"
    );
    (table, vec![read_truth(&t1), read_truth(&t2)])
}

fn check_shell(mode: &str, bound: f64) {
    let (t, truths) = shell_with_two_children(mode);
    let mono = column(&t, "monotime");
    let win = column(&t, "window_seconds");
    let procs = column(&t, "proc_num_processes");
    let total = column(&t, "proc_cpu_util_percent_total");
    let mut checked = 0;
    for i in 0..mono.len() - 1 {
        let end = (mono[i].unwrap() * 1e9) as u64;
        let w = win[i].unwrap();
        let start = end - (w * 1e9) as u64;
        let gains: Option<Vec<f64>> = truths
            .iter()
            .map(|tr| Some(truth_at(tr, end, |s| s.cpu_ns)? - truth_at(tr, start, |s| s.cpu_ns)?))
            .collect();
        let Some(gains) = gains else { continue };
        assert_eq!(procs[i], Some(3.0), "{mode} window {i}: sh and two children");
        let truth = gains.iter().sum::<f64>() / (w * 1e9) * 100.0;
        // The truth is sampled every millisecond, more sparsely when its
        // sampler thread waited for a CPU: what it can be off by at each
        // edge is what it changed by across the samples around that edge.
        let slack: f64 = truths
            .iter()
            .map(|tr| truth_slack(tr, start, |s| s.cpu_ns) + truth_slack(tr, end, |s| s.cpu_ns))
            .sum::<f64>()
            / (w * 1e9)
            * 100.0;
        let got = total[i].unwrap();
        assert!(
            (got - truth).abs() <= bound + slack,
            "{mode} window {i}: {got:.3} % vs truth {truth:.3} % (bound {bound} % + truth slack {slack:.3} %)"
        );
        eprintln!("{mode} window {i}: {got:.3} % vs truth {truth:.3} % (slack {slack:.3} %)");
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} windows covered");
    let rss = column(&t, "proc_mem_rss");
    assert!(rss[..rss.len() - 1].iter().all(|r| r.unwrap() > 0.0), "{mode}: {rss:?}");
}

#[test]
fn shell_with_two_busy_children_procfs() {
    check_shell("procfs", 3.2);
}

#[test]
#[ignore = "needs root"]
fn shell_with_two_busy_children_ebpf() {
    if require_root("shell_with_two_busy_children_ebpf") {
        check_shell("ebpf", 0.5);
    }
}

#[test]
fn system_memory_total_is_meminfo() {
    let (t, _) = shell_with_two_children("procfs");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(column(&t, "system_mem_total").iter().all(|v| *v == Some(kb * 1024.0)));
}

#[test]
fn four_thousand_threads() {
    for mode in ["procfs", "ebpf"] {
        if mode == "ebpf" && !require_root("four_thousand_threads") {
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("rec.h5");
        let mut child = workload(&["busy", "--threads", "4000", "--duty", "0", "--period-ms", "500", "--seconds", "5"]);
        std::thread::sleep(std::time::Duration::from_millis(800));
        let status = messer()
            .args(["--pid", &child.id().to_string(), "--mode", mode, "--interval", "0.5", "-o"])
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(child.wait().unwrap().success());
        let t = read_table(
            &out,
            "messer_timeseries",
            &["window_seconds", "proc_num_threads", "proc_cpu_util_percent_total"],
        );
        let threads = column(&t, "proc_num_threads");
        let win = column(&t, "window_seconds");
        let n = threads.len();
        assert!(n >= 6, "{mode}: {n} rows");
        // The first four windows (before any worker ends): the main thread
        // and 4000 workers.
        for i in 0..4 {
            assert_eq!(threads[i], Some(4001.0), "{mode} window {i}");
            // A procfs read of 4000 threads takes tens of ms, so windows vary by that.
            assert!((win[i].unwrap() - 0.5).abs() < 0.2, "{mode}: window {i} lasted {:?} s", win[i]);
            assert!(column(&t, "proc_cpu_util_percent_total")[i].unwrap() >= 0.0);
        }
    }
}
