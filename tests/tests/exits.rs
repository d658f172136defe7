//! Processes whose threads end in unusual orders: a main thread that calls
//! pthread_exit while a worker runs on, and a non-main thread that calls
//! exec (the kernel kills the main thread; the exec'ing thread takes over
//! its pid). Nothing is lost and nothing counted twice, in both modes, and
//! in ebpf mode also on the path kernels before 6.16 take (no `group_dead`
//! argument at sched_process_exit: `signal->live` decides).
//!
//! Truth in ebpf mode (root): the workload's own cgroup (`CgroupTruth`),
//! which holds the exit's teardown that getrusage at the workload's end
//! misses (under QEMU's emulation in `cargo xtask test-kernel` that alone
//! broke a 0.5 % bound against getrusage). Without root (procfs tests run
//! unprivileged too) the truth is getrusage.

use messer_tests::*;

/// What one recording gave: CPU seconds recorded, the true CPU seconds
/// (an interval, see above), exit events, the process table's rows.
struct Recorded {
    recorded: f64,
    truth: (f64, f64),
    exits: usize,
    info: serde_json::Value,
    /// For a failure's message: each window's CPU % and, in ebpf mode, the
    /// kernel side's diagnostic counters at the end.
    diagnosis: String,
}

/// Records `workload MODE --seconds S` launched by messer. `cgroup`: the
/// truth is the workload's cgroup (see above), else the getrusage it
/// reports.
fn record(
    mode: &str,
    env_old_kernel: bool,
    threads: bool,
    workload_mode: &str,
    seconds: f64,
    cgroup: bool,
) -> Recorded {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    let mut c = messer();
    if env_old_kernel {
        c.env("MESSER_TEST_EXIT_WITHOUT_GROUP_DEAD", "1");
    }
    let cg = cgroup.then(|| CgroupTruth::new(&format!("messer-test-exits-{workload_mode}")));
    if let Some(cg) = &cg {
        cg.apply(&mut c);
    }
    if threads {
        c.arg("--threads");
    }
    c.args(["--mode", mode, "--interval", "0.25", "-o"]).arg(&out).arg("--").arg(workload_bin()).args([
        workload_mode,
        "--seconds",
        &seconds.to_string(),
    ]);
    if workload_mode == "thread-exec" {
        // The main thread's own CPU, whose thread dies at the exec, counts too.
        c.args(["--leader-seconds", "0.3"]);
    }
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{mode} {workload_mode}: {err}");
    let reported = reported_cpu_s(&o.stdout);
    // messer has reaped the workload: the cgroup's usage is final.
    let truth = match &cg {
        Some(cg) => {
            let (low, high) = cg.seconds(&o.stdout);
            eprintln!(
                "{mode} {workload_mode}: cgroup truth {low:.4} .. {high:.4} s, getrusage at the end {reported:.4} s"
            );
            (low, high)
        }
        None => (reported, reported),
    };
    let t =
        read_table(&out, "messer_timeseries", &["proc_cpu_util_percent_total", "window_seconds", "proc_num_processes"]);
    let cpu = column(&t, "proc_cpu_util_percent_total");
    let w = column(&t, "window_seconds");
    let recorded: f64 = cpu.iter().zip(&w).map(|(c, w)| c.unwrap_or(0.0) / 100.0 * w.unwrap_or(0.0)).sum();
    // Every full window while it ran has figures and the process in it.
    let n = cpu.len();
    for (i, c) in cpu.iter().enumerate().take(n.saturating_sub(1)) {
        assert!(c.is_some(), "{mode} {workload_mode}: window {i} has no CPU figure: {cpu:?}");
    }
    if threads {
        // Each thread's rows: none near two cores (the exec once gave one
        // thread 199 %), and the threads of each window add up to the
        // process's figure. A thread's window is its CPU's epoch, whose
        // boundary can lie some ms off the loader's (under QEMU's
        // emulation one window at the start gave a lone spinner 105.6 %,
        // 14 ms in 0.25 s), hence 110 % rather than 100.
        let th = read_table(&out, "messer_threads", &["monotime", "cpu_util_percent_total"]);
        let (at, pct) = (column(&th, "monotime"), column(&th, "cpu_util_percent_total"));
        let mut by_window: Vec<(f64, f64)> = Vec::new();
        for (m, c) in at.iter().zip(&pct) {
            let (m, c) = (m.unwrap_or(f64::NAN), c.unwrap_or(0.0));
            assert!(c <= 110.0, "{workload_mode} --threads: a thread at {c} % of a core: {pct:?}");
            match by_window.iter_mut().find(|(w, _)| *w == m) {
                Some((_, s)) => *s += c,
                None => by_window.push((m, c)),
            }
        }
        let mono = read_table(&out, "messer_timeseries", &["monotime"]);
        for (m, total) in column(&mono, "monotime").iter().zip(&cpu) {
            let sum = by_window.iter().find(|(w, _)| Some(*w) == *m).map_or(0.0, |(_, s)| *s);
            let total = total.unwrap_or(0.0);
            assert!(
                (sum - total).abs() <= 0.5,
                "{workload_mode} --threads: threads {sum} % vs process {total} % at {m:?}: {by_window:?}"
            );
        }
    }
    let ev = read_table(&out, "messer_events", &["kind"]);
    let kinds: Vec<String> =
        ev["kind"].as_array().unwrap().iter().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    let exits = kinds.iter().filter(|k| *k == "exit").count();
    let info = read_table(&out, "messer_process_info", &["pid", "cpu_seconds"]);
    let mut diagnosis = format!("windows' CPU %: {cpu:?}");
    if mode == "ebpf" {
        let names = ["ebpf_stint_unknown", "ebpf_flush_resync", "ebpf_thread_insert_failed", "ebpf_flush_interrupts"];
        let d = read_table(&out, "messer_timeseries", &names);
        for name in names {
            diagnosis += &format!(", {name} {:?}", column(&d, name));
        }
    }
    Recorded { recorded, truth, exits, info, diagnosis }
}

/// `bound`: relative; procfs mode also loses what the threads ran after the
/// last read before the process ended (at most one interval, 0.25 s, of one
/// busy thread: /proc no longer shows them), allowed absolutely.
fn check(mode: &str, old_kernel: bool, workload_mode: &str, seconds: f64, bound: f64) {
    check_with(mode, old_kernel, false, workload_mode, seconds, bound);
}

/// `check`, with `--threads` (per-thread rows) on where `threads`.
fn check_with(mode: &str, old_kernel: bool, threads: bool, workload_mode: &str, seconds: f64, bound: f64) {
    let Recorded { recorded, truth: (low, high), exits, info, diagnosis } =
        record(mode, old_kernel, threads, workload_mode, seconds, mode == "ebpf");
    let off = |t: f64| (recorded / t - 1.0) * 100.0;
    eprintln!(
        "{mode}{} {workload_mode}: recorded {recorded:.4} s, truth {low:.4} .. {high:.4} s ({:+.3} .. {:+.3} %), exit events {exits}, process_info {info}; {diagnosis}",
        match (old_kernel, threads) {
            (true, _) => " (signal->live)",
            (_, true) => " --threads",
            _ => "",
        },
        off(high),
        off(low)
    );
    assert!(low > 1.9 * seconds * 0.9 || workload_mode == "leader-exit", "{workload_mode} burned {low} s");
    let last_window = if mode == "procfs" { 0.25 } else { 0.0 };
    assert!(
        recorded <= high * (1.0 + bound),
        "{mode} {workload_mode}: {recorded} s recorded vs {low} .. {high} s: counted twice; {diagnosis}"
    );
    assert!(
        recorded >= low * (1.0 - bound) - last_window,
        "{mode} {workload_mode}: {recorded} s recorded vs {low} .. {high} s: lost; {diagnosis}"
    );
    assert!(exits <= 1, "{mode} {workload_mode}: {exits} exit events for one process");
    assert_eq!(info["pid"].as_array().map(Vec::len), Some(1), "{mode} {workload_mode}: one process: {info}");
}

#[test]
#[ignore = "needs root"]
fn leader_exit_ebpf() {
    if !require_root("leader_exit_ebpf") {
        return;
    }
    // 3 s as on the kernel where the loss was found.
    check("ebpf", false, "leader-exit", 3.0, 0.005);
    check("ebpf", true, "leader-exit", 3.0, 0.005);
}

#[test]
#[ignore = "needs root"]
fn thread_exec_ebpf() {
    if !require_root("thread_exec_ebpf") {
        return;
    }
    check("ebpf", false, "thread-exec", 1.5, 0.005);
    check("ebpf", true, "thread-exec", 1.5, 0.005);
    // The exec'ing thread and the dead main thread exchange ids; with
    // per-thread rows the main thread's entry is still there when the
    // exec'ing thread first switches out under its new id (it was settled
    // against that entry: +0.5 s on a main thread that had burned 0.5 s).
    check_with("ebpf", false, true, "thread-exec", 1.5, 0.005);
}

#[test]
fn leader_exit_procfs() {
    check("procfs", false, "leader-exit", 3.0, 0.03);
}

#[test]
fn thread_exec_procfs() {
    check("procfs", false, "thread-exec", 1.5, 0.03);
}
