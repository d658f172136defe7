//! Targets that come and go: `--comm` (kernel exec matching and /proc
//! scans), `--pid-command` across restarts, and `--mode both` with
//! `messer compare`.

use std::process::Command;
use std::time::Duration;

use messer_tests::{column, interrupt, read_table, reported_cpu_s, require_root, start_recording, workload_named};

fn strings(v: &serde_json::Value, name: &str) -> Vec<String> {
    v[name].as_array().unwrap().iter().map(|x| x.as_str().unwrap_or("").to_string()).collect()
}

/// CPU seconds in the time series: the sum of percent x window.
fn recorded_cpu_s(path: &std::path::Path, table: &str) -> f64 {
    let t = read_table(path, table, &["proc_cpu_util_percent_total", "window_seconds"]);
    let cpu = column(&t, "proc_cpu_util_percent_total");
    let w = column(&t, "window_seconds");
    cpu.iter().zip(&w).filter_map(|(c, w)| Some(c.filter(|c| c.is_finite())? / 100.0 * (*w)?)).sum()
}

#[test]
#[ignore = "needs root"]
fn comm_captures_every_instance_of_a_restarting_program() {
    if !require_root("comm_captures_every_instance_of_a_restarting_program") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tool = workload_named(dir.path(), "supertool");
    let out = dir.path().join("comm.h5");
    let out_s = out.to_str().unwrap();
    let (m, log) = start_recording(&["--mode", "ebpf", "--comm", "supertool", "--interval", "0.2", "-o", out_s]);
    let mut truth = 0.0;
    for _ in 0..5 {
        let o =
            Command::new(&tool).args(["busy", "--threads", "2", "--duty", "1", "--seconds", "0.4"]).output().unwrap();
        assert!(o.status.success());
        truth += reported_cpu_s(&o.stdout);
        std::thread::sleep(Duration::from_millis(150));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(interrupt(m), Some(0), "{}", log.lock().unwrap());
    let got = recorded_cpu_s(&out, "messer_timeseries");
    println!(
        "--comm: recorded {got:.4} s of CPU, the 5 instances reported {truth:.4} s ({:.2} %)",
        got / truth * 100.0
    );
    assert!(got >= 0.99 * truth && got <= 1.01 * truth, "recorded {got} s against {truth} s");

    let ev = read_table(&out, "messer_events", &["kind", "pid", "comm"]);
    let kinds = strings(&ev, "kind");
    let pids = column(&ev, "pid");
    let mut found: Vec<i64> = kinds
        .iter()
        .zip(&pids)
        .filter(|(k, _)| *k == "target_found" || *k == "target_restarted")
        .map(|(_, p)| p.unwrap() as i64)
        .collect();
    found.sort();
    found.dedup();
    assert_eq!(found.len(), 5, "five instances found: {kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "target_lost").count(), 5);
    assert_eq!(kinds.iter().filter(|k| *k == "exit").count(), 5);
    let info = read_table(&out, "messer_process_info", &["pid", "comm"]);
    assert_eq!(strings(&info, "comm").iter().filter(|c| *c == "supertool").count(), 5);
    // Between instances there was no target: missing, not zero.
    let ts = read_table(&out, "messer_timeseries", &["proc_pid", "proc_cpu_util_percent_total", "window_seconds"]);
    let cpu = column(&ts, "proc_cpu_util_percent_total");
    let pid = column(&ts, "proc_pid");
    assert!(pid.iter().zip(&cpu).all(|(p, c)| (*p == Some(0.0)) == c.is_none()), "{pid:?} {cpu:?}");
    assert!(cpu.last().unwrap().is_none(), "no target after the last instance: {cpu:?}");
    // Two threads on a machine of at least two CPUs: never above 200 %, but
    // for a switch-in the kernel side did not see (counted in
    // ebpf_flush_resync): up to one tick (4 ms at HZ=250, 2 % of a 0.2 s
    // window) of a stint can then land in the next window.
    let resync = column(&read_table(&out, "messer_timeseries", &["ebpf_flush_resync"]), "ebpf_flush_resync");
    assert!(cpu.iter().flatten().all(|c| *c <= 203.0), "{cpu:?}, flush resyncs {resync:?}");
}

#[test]
fn comm_in_procfs_mode_scans_proc() {
    let dir = tempfile::tempdir().unwrap();
    let tool = workload_named(dir.path(), "scantool");
    let out = dir.path().join("scan.h5");
    let (m, log) =
        start_recording(&["--mode", "procfs", "--comm", "scantool", "--interval", "0.1", "-o", out.to_str().unwrap()]);
    let mut truth = 0.0;
    for _ in 0..2 {
        let o = Command::new(&tool).args(["busy", "--threads", "1", "--duty", "1", "--seconds", "1"]).output().unwrap();
        truth += reported_cpu_s(&o.stdout);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(interrupt(m), Some(0), "{}", log.lock().unwrap());
    let got = recorded_cpu_s(&out, "messer_timeseries");
    // procfs cannot see the last part of a process that exits within a window.
    println!("--comm (procfs): recorded {got:.3} s of {truth:.3} s ({:.1} %)", got / truth * 100.0);
    assert!(got >= 0.8 * truth && got <= 1.01 * truth, "recorded {got} s against {truth} s");
    let ev = read_table(&out, "messer_events", &["kind"]);
    let kinds = strings(&ev, "kind");
    let targets: Vec<&String> = kinds.iter().filter(|k| k.starts_with("target")).collect();
    assert_eq!(targets, ["target_found", "target_lost", "target_restarted", "target_lost"], "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| *k == "exit").count(), 2, "{kinds:?}");
}

#[test]
fn pid_command_follows_a_restarted_service() {
    let dir = tempfile::tempdir().unwrap();
    let tool = workload_named(dir.path(), "pidcmdtool");
    let out = dir.path().join("pidcmd.h5");
    let args = ["--mode", "procfs", "--pid-command", "pgrep -n -x pidcmdtool", "--interval", "0.1", "-o"];
    let (m, log) = start_recording(&[&args[..], &[out.to_str().unwrap()]].concat());
    let (mut pids, mut truths) = (Vec::new(), Vec::new());
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..2 {
        let c = Command::new(&tool)
            .args(["busy", "--threads", "1", "--duty", "1", "--seconds", "1"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        pids.push(f64::from(c.id()));
        truths.push(reported_cpu_s(&c.wait_with_output().unwrap().stdout));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(interrupt(m), Some(0));
    let log = log.lock().unwrap().clone();
    assert!(log.contains("--pid-command exited with status 1"), "pgrep finding nothing is reported: {log}");
    let ts = read_table(&out, "messer_timeseries", &["proc_pid", "proc_cpu_util_percent_total", "window_seconds"]);
    let seen: Vec<f64> = column(&ts, "proc_pid").into_iter().flatten().collect();
    let mut distinct = seen.clone();
    distinct.dedup();
    // No target, the first instance, none, the second, none.
    assert_eq!(distinct, [0.0, pids[0], 0.0, pids[1], 0.0], "proc_pid over time");
    let cpu = column(&ts, "proc_cpu_util_percent_total");
    // No target: NaN, not 0 (procfs also cannot measure the window in which
    // a target exits, so that one is NaN with the pid).
    assert!(seen.iter().zip(&cpu).all(|(p, c)| *p != 0.0 || c.is_none()), "no target: NaN, not 0: {cpu:?}");
    // Each instance's CPU against its own getrusage (not against a core it
    // may share with other tests). procfs measures every window of it but
    // these, at most 0.1 s each of one core: up to two before it is found
    // (the run in flight when it started may have looked before it; the
    // next run's result is taken at the read after), the one it was found
    // in (from then on) and the one it exited in.
    let windows = column(&ts, "window_seconds");
    for (pid, truth) in pids.iter().zip(&truths) {
        let got: f64 = seen
            .iter()
            .zip(cpu.iter().zip(&windows))
            .filter(|(p, _)| **p == *pid)
            .filter_map(|(_, (c, w))| Some((*c)? / 100.0 * (*w)?))
            .sum();
        println!("instance {pid}: recorded {got:.4} s of CPU, it reported {truth:.4} s");
        assert!(got <= 1.01 * truth && got >= truth - 0.4, "instance {pid}: {got} s against {truth} s: {cpu:?}");
    }
    let ev = read_table(&out, "messer_events", &["kind", "pid"]);
    let kinds: Vec<String> = strings(&ev, "kind").into_iter().filter(|k| k.starts_with("target")).collect();
    assert_eq!(kinds, ["target_found", "target_lost", "target_restarted", "target_lost"]);
}

/// Records the workload with `args`, launched by messer `--mode both` at
/// 0.5 s, into a file in `dir`.
fn record_both(dir: &std::path::Path, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join("both.h5");
    let o = messer_tests::messer()
        .args(["--mode", "both", "--interval", "0.5", "-o"])
        .arg(&out)
        .arg("--")
        .arg(messer_tests::workload_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
#[ignore = "needs root"]
fn both_modes_agree_on_a_steady_workload_and_compare_says_so() {
    if !require_root("both_modes_agree_on_a_steady_workload_and_compare_says_so") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = record_both(dir.path(), &["busy", "--threads", "1", "--duty", "1", "--seconds", "4"]);
    let cols = ["proc_cpu_util_percent_total", "window_seconds"];
    let e = column(&read_table(&out, "messer_timeseries", &cols), "proc_cpu_util_percent_total");
    let p = column(&read_table(&out, "messer_procfs_timeseries", &cols), "proc_cpu_util_percent_total");
    assert_eq!(e.len(), p.len(), "one row per tick in each table");
    // Full windows: all but the first (start) and the last (exit).
    let worst = e[1..e.len() - 1]
        .iter()
        .zip(&p[1..p.len() - 1])
        .map(|(a, b)| (a.unwrap() - b.unwrap()).abs())
        .fold(0.0, f64::max);
    println!("--mode both: worst full-window difference {worst:.3} % of a core");
    // procfs reads a running thread's schedstat, which the kernel brings up
    // to date at its scheduler ticks: it may lag by up to a tick (4 ms at
    // HZ=250) at either end of a window, 1.6 % of 0.5 s (1.14 % was seen in
    // a CI run, the next window making up for it).
    assert!(worst < 1.6, "ebpf {e:?}\nprocfs {p:?}");

    let c = messer_tests::messer().arg("compare").arg(&out).args(["--format", "json"]).output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let metrics: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    let cpu = metrics.as_array().unwrap().iter().find(|m| m["name"] == "proc_cpu_util_percent_total").unwrap();
    let (te, tp) = (cpu["total_ebpf"].as_f64().unwrap(), cpu["total_procfs"].as_f64().unwrap());
    assert!((te - tp).abs() < 0.02 * te, "totals {te} and {tp} core-s");
    assert_eq!(cpu["worst"].as_array().unwrap().len(), 3);
    let text = messer_tests::messer().arg("compare").arg(&out).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("CPU: ebpf and procfs agree within"), "{text}");
    let csv = messer_tests::messer().arg("compare").arg(&out).args(["--format", "csv"]).output().unwrap();
    assert!(String::from_utf8_lossy(&csv.stdout).starts_with("metric,total_unit,total_ebpf"));
}

/// `--mode both` measures run-queue wait both ways (the kernel side at
/// switches, procfs from the threads' schedstat): on a workload that keeps
/// four threads competing for two CPUs the two agree per full window, and
/// `compare` lists them.
#[test]
#[ignore = "needs root"]
fn both_modes_agree_on_run_queue_wait() {
    if !require_root("both_modes_agree_on_run_queue_wait") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = record_both(dir.path(), &["pingpong", "--pairs", "2", "--seconds", "4"]);
    let cols = ["proc_runq_wait_percent", "proc_runq_wait_mean_ms", "window_seconds"];
    let e = read_table(&out, "messer_timeseries", &cols);
    let p = read_table(&out, "messer_procfs_timeseries", &cols);
    let (ew, pw, win) = (column(&e, cols[0]), column(&p, cols[0]), column(&e, "window_seconds"));
    let n = ew.len();
    assert!(n >= 6, "{n} rows");
    for i in 1..n - 1 {
        let (a, b) = (ew[i].unwrap() / 100.0 * win[i].unwrap(), pw[i].unwrap() / 100.0 * win[i].unwrap());
        println!("window {i}: run-queue wait ebpf {a:.4} s, procfs {b:.4} s");
        // The procfs read follows the ebpf flush by a few hundred µs: waits
        // that end in between fall into neighbouring windows.
        assert!((a - b).abs() <= 0.02 * a.max(b) + 0.002, "window {i}: ebpf {a} s vs procfs {b} s");
        assert!(column(&p, cols[1])[i].is_some_and(|m| m > 0.0), "window {i}: no mean wait");
    }
    let c = messer_tests::messer().arg("compare").arg(&out).args(["--format", "json"]).output().unwrap();
    let metrics: serde_json::Value = serde_json::from_slice(&c.stdout).unwrap();
    assert!(metrics.as_array().unwrap().iter().any(|m| m["name"] == cols[0]), "{metrics}");
}

/// With 16 processes or more, ebpf mode reads each process's stat and its
/// peak RSS and swap through the process iterator (the kernel's
/// `do_task_stat` and `task_mem` rules on each leader), procfs mode from
/// /proc/<pid>/stat and /proc/<pid>/status: on 20 sleeping processes,
/// whose memory stays put once they have started, the two agree to the
/// byte in every full window, and so do their threads, virtual size and
/// reaped children's CPU (the shell reaps a busy child, then execs the
/// workload). Each process's start time, which with its pid is its
/// identity, and its parent are /proc's, read by the test meanwhile. The
/// iterator reads the descriptor limit too (procfs mode: prlimit).
#[test]
#[ignore = "needs root"]
fn both_modes_agree_on_memory_of_many_processes() {
    if !require_root("both_modes_agree_on_memory_of_many_processes") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("both.h5");
    let mut c = messer_tests::messer();
    // A soft descriptor limit of its own, which the iterator reads from each
    // process's signal_struct and procfs mode by prlimit.
    let w = messer_tests::workload_bin();
    let script = format!(
        "ulimit -n 333 && {w} busy --threads 1 --duty 1 --seconds 0.3 >/dev/null && exec {w} sleepers --processes 20 \
         --seconds 4",
        w = w.display()
    );
    c.args(["--mode", "both", "--interval", "0.5", "-o"]).arg(&out).args(["--", "sh", "-c", &script]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // The truth: each process's start time (ticks) and parent, from /proc,
    // once all 21 run (polled: under emulation the busy child takes long).
    let stat = |pid: i32| -> Option<Vec<String>> {
        let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(t[t.rfind(')')? + 2..].split(' ').map(str::to_string).collect())
    };
    let parent = |pid: i32| stat(pid).and_then(|f| f[1].parse::<i32>().ok());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let truth = loop {
        let pids: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let top = pids.iter().copied().find(|&p| parent(p) == Some(child.id() as i32));
        let mut truth = std::collections::HashMap::new();
        for p in pids.iter().copied().filter(|&p| Some(p) == top || top.is_some() && parent(p) == top) {
            if let Some(f) = stat(p) {
                truth.insert(p, (f[19].parse::<f64>().unwrap(), f[1].parse::<f64>().unwrap()));
            }
        }
        if truth.len() == 21 || std::time::Instant::now() > deadline {
            break truth;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(truth.len(), 21, "{truth:?}");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // On x86-64 the iterator loads on every kernel messer runs on (up to
    // 6.1 the counters are atomic, from 6.2 it sums the CPUs' parts); where
    // it does not, both modes read /proc and the comparison says nothing.
    let loaded = !err.contains("memory figures come from") && !err.contains("the process iterator does not load");
    println!("process iterator loaded with memory: {loaded}");
    if cfg!(target_arch = "x86_64") {
        assert!(loaded, "the process iterator did not load: {err}");
    }
    assert!(!err.contains("stat is read from /proc here"), "{err}");
    assert!(!err.contains("the process iterator failed"), "{err}");
    let cols = [
        "proc_mem_rss_peak",
        "proc_mem_swap",
        "proc_num_processes",
        "proc_fd_limit",
        "proc_mem_rss",
        "proc_mem_vms",
        "proc_num_threads",
        "proc_cpu_children_user_s",
        "proc_cpu_children_system_s",
    ];
    let e = read_table(&out, "messer_timeseries", &cols);
    let p = read_table(&out, "messer_procfs_timeseries", &cols);
    let (eh, ph, n) = (column(&e, cols[0]), column(&p, cols[0]), column(&e, cols[2]));
    // Full windows: all 21 processes there before, during and after (the
    // busy child runs first; under emulation it takes a while).
    let full: Vec<usize> = (1..eh.len().saturating_sub(1))
        .filter(|&i| (i - 1..=i + 1).all(|j| n[j] == Some(21.0) && column(&p, cols[2])[j] == Some(21.0)))
        .collect();
    assert!(full.len() >= 3, "full windows {full:?} of {n:?}");
    for i in full {
        println!("window {i}: {:?} processes, peak RSS ebpf {:?} procfs {:?} bytes", n[i], eh[i], ph[i]);
        assert!(eh[i].is_some_and(|v| v > 21.0 * 100e3), "window {i}: {:?}", eh[i]);
        for c in cols.iter().filter(|&&c| c != "proc_fd_limit") {
            assert_eq!(column(&e, c)[i], column(&p, c)[i], "window {i}: {c}");
        }
        assert_eq!(column(&e, cols[3])[i], Some(333.0), "window {i}: descriptor limit, ebpf");
        assert_eq!(column(&p, cols[3])[i], Some(333.0), "window {i}: descriptor limit, procfs");
        let children =
            column(&e, "proc_cpu_children_user_s")[i].unwrap() + column(&e, "proc_cpu_children_system_s")[i].unwrap();
        assert!(children >= 0.2, "window {i}: reaped children's CPU {children} s");
    }
    // Start times (to the tick) and parents, against /proc's.
    let info = read_table(&out, "messer_process_info", &["pid", "ppid", "start_unixtime"]);
    let boot = messer_tests::boot_unixtime();
    let (ip, ipp, ist) = (column(&info, "pid"), column(&info, "ppid"), column(&info, "start_unixtime"));
    // The 21 and the busy child reaped before (not in the truth).
    let found: Vec<usize> = (0..ip.len()).filter(|&k| truth.contains_key(&(ip[k].unwrap() as i32))).collect();
    assert_eq!(found.len(), 21, "{ip:?}");
    for k in found {
        let pid = ip[k].unwrap() as i32;
        let (ticks, ppid) = truth[&pid];
        let d = ist[k].unwrap() - (boot + ticks / messer_tests::ticks_per_second());
        assert!(
            d.abs() < 0.4 / messer_tests::ticks_per_second(),
            "process {pid}: start {:?}, /proc says {ticks} ticks after boot ({d} s off)",
            ist[k]
        );
        assert_eq!(ipp[k], Some(ppid), "process {pid}: parent");
    }
}

/// With 16 processes or more, ebpf mode counts each process's open
/// descriptors in the kernel (the process iterator: the bits set in its
/// file table's `open_fds`, as /proc/<pid>/fd's size counts them from
/// 6.2), procfs mode from /proc. 20 sleepers and two holders, of 300
/// descriptors (a table of several bitmap words) and of 5: in every full
/// window both modes give the tree's sum that the test counts itself by
/// listing each process's /proc/<pid>/fd meanwhile, and the kernel side
/// counted every process (the debug log says none was left to /proc).
#[test]
#[ignore = "needs root"]
fn kernel_counts_descriptors_as_proc_does() {
    if !require_root("kernel_counts_descriptors_as_proc_does") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fds.h5");
    let w = messer_tests::workload_bin();
    let script = format!(
        "ulimit -n 1000 && {w} fds --open 300 --seconds 5 & {w} fds --open 5 --seconds 5 & exec {w} sleepers \
         --processes 20 --seconds 4",
        w = w.display()
    );
    let mut c = messer_tests::messer();
    c.args(["-v", "--mode", "both", "--interval", "0.5", "-o"]).arg(&out).args(["--", "sh", "-c", &script]);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    // The truth: the tree's descriptors, listed once all 23 run and hold
    // theirs (polled until two listings agree).
    let parent = |pid: i32| -> Option<i32> {
        let t = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        t[t.rfind(')')? + 2..].split(' ').nth(1)?.parse().ok()
    };
    let count = || -> (usize, usize) {
        let pids: Vec<i32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        let Some(top) = pids.iter().copied().find(|&p| parent(p) == Some(child.id() as i32)) else { return (0, 0) };
        let tree: Vec<i32> = pids.into_iter().filter(|&p| p == top || parent(p) == Some(top)).collect();
        let fds = tree.iter().map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).map_or(0, |d| d.count())).sum();
        (tree.len(), fds)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut last = (0, 0);
    let truth = loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now.0 == 23 && now == last || std::time::Instant::now() > deadline {
            break now;
        }
        last = now;
    };
    assert_eq!(truth.0, 23, "processes in the tree: {truth:?}");
    assert!(truth.1 >= 300 + 5 + 23 * 3, "{truth:?}");
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("descriptors are counted from /proc here"), "{err}");
    let iterated: Vec<&str> = err.lines().filter(|l| l.contains("process iterator: 23 processes")).collect();
    assert!(iterated.len() >= 3, "{err}");
    assert!(iterated.iter().all(|l| l.ends_with(" 0 to their fd")), "{iterated:?}");
    let cols = ["proc_num_fds", "proc_num_processes"];
    let e = read_table(&out, "messer_timeseries", &cols);
    let p = read_table(&out, "messer_procfs_timeseries", &cols);
    let n = |t: &serde_json::Value, i: usize| column(t, cols[1])[i];
    let full: Vec<usize> = (1..column(&e, cols[0]).len().saturating_sub(1))
        .filter(|&i| (i - 1..=i + 1).all(|j| n(&e, j) == Some(23.0) && n(&p, j) == Some(23.0)))
        .collect();
    assert!(full.len() >= 3, "full windows {full:?}");
    for i in full {
        assert_eq!(column(&e, cols[0])[i], Some(truth.1 as f64), "window {i}: ebpf");
        assert_eq!(column(&p, cols[0])[i], Some(truth.1 as f64), "window {i}: procfs");
    }
}

/// With 16 processes or more, ebpf mode sums each process's IO counters
/// over its threads in the kernel (the process iterator, under the
/// process's `stats_lock` sequence), procfs mode reads /proc/<pid>/io. A
/// writer whose threads each write 1 MiB to /dev/null and exit, 4 at a
/// time, while 20 sleepers fill the tree: threads exit during the
/// iterator's walks, and both modes still record the bytes written to
/// within what the interpreter writes besides (its threads' 200 MiB, known
/// from the writer itself), none counted twice or lost. The shell execs
/// the writer: a parent that reaps a child gains the child's counters in
/// its own (the kernel's `wait_task_zombie`), which both modes would add
/// to the child's.
#[test]
#[ignore = "needs root"]
fn thread_io_sums_survive_exiting_threads() {
    if !require_root("thread_io_sums_survive_exiting_threads") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("io.h5");
    // It lives on after its last write: the bytes of a process that exited
    // before a read are not in ebpf mode's rows without `--io-syscalls`.
    let writer = "import os, threading, time\n\
                  def w():\n    fd = os.open('/dev/null', os.O_WRONLY)\n    b = b'x' * 65536\n    \
                  for _ in range(16): os.write(fd, b)\n    os.close(fd)\n\
                  for _ in range(50):\n    ts = [threading.Thread(target=w) for _ in range(4)]\n    \
                  [t.start() for t in ts]\n    [t.join() for t in ts]\n    time.sleep(0.02)\n\
                  time.sleep(0.5)\n";
    let py = messer_tests::python();
    let script = format!(
        "{w} sleepers --processes 20 --seconds 5 & sleep 0.7; exec {py} -c \"$WRITER\"",
        w = messer_tests::workload_bin().display(),
        py = py.display()
    );
    let mut c = messer_tests::messer();
    c.env("WRITER", writer);
    c.args(["--mode", "both", "--interval", "0.1", "-o"]).arg(&out).args(["--", "sh", "-c", &script]);
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("IO counters are read from /proc here"), "{err}");
    let written = 50.0 * 4.0 * 16.0 * 65536.0;
    let cols = ["proc_disk_write_throughput_mibps", "window_seconds"];
    let total = |table: &str| -> f64 {
        let t = read_table(&out, table, &cols);
        let (r, w) = (column(&t, cols[0]), column(&t, cols[1]));
        r.iter().zip(&w).filter_map(|(r, w)| Some(r.filter(|r| r.is_finite())? * (*w)? * 1048576.0)).sum()
    };
    let (e, p) = (total("messer_timeseries"), total("messer_procfs_timeseries"));
    println!("written {written} bytes; recorded ebpf {e:.0}, procfs {p:.0}");
    for (mode, v) in [("ebpf", e), ("procfs", p)] {
        assert!(v >= written - 1.0 && v <= written + 1048576.0, "{mode}: {v} bytes recorded of {written}");
    }
}
