//! Processes whose threads end in unusual orders: a main thread that calls
//! pthread_exit while a worker runs on, and a non-main thread that calls
//! exec (the kernel kills the main thread; the exec'ing thread takes over
//! its pid). Nothing is lost and nothing counted twice, in both modes, and
//! in ebpf mode also on the path kernels before 6.16 take (no `group_dead`
//! argument at sched_process_exit: `signal->live` decides).

use messer_tests::*;

/// Records `workload MODE --seconds S` launched by messer; returns (CPU
/// seconds recorded, CPU seconds the workload reported, exit events, rows
/// of the process tables, stderr).
fn record(mode: &str, env_old_kernel: bool, workload_mode: &str, seconds: f64) -> (f64, f64, usize, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    let mut c = messer();
    if env_old_kernel {
        c.env("MESSER_TEST_EXIT_WITHOUT_GROUP_DEAD", "1");
    }
    c.args(["--mode", mode, "--interval", "0.25", "-o"]).arg(&out).arg("--").arg(workload_bin()).args([
        workload_mode,
        "--seconds",
        &seconds.to_string(),
    ]);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{mode} {workload_mode}: {err}");
    let truth = reported_cpu_s(&o.stdout);
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
    let ev = read_table(&out, "messer_events", &["kind"]);
    let kinds: Vec<String> =
        ev["kind"].as_array().unwrap().iter().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    let exits = kinds.iter().filter(|k| *k == "exit").count();
    let info = read_table(&out, "messer_process_info", &["pid", "cpu_seconds"]);
    (recorded, truth, exits, info)
}

/// `bound`: relative; procfs mode also loses what the threads ran after the
/// last read before the process ended (at most one interval, 0.25 s, of one
/// busy thread: /proc no longer shows them), allowed absolutely.
fn check(mode: &str, old_kernel: bool, workload_mode: &str, seconds: f64, bound: f64) {
    let (recorded, truth, exits, info) = record(mode, old_kernel, workload_mode, seconds);
    eprintln!(
        "{mode}{} {workload_mode}: recorded {recorded:.4} s, truth {truth:.4} s ({:+.3} %), exit events {exits}, process_info {info}",
        if old_kernel { " (signal->live)" } else { "" },
        (recorded / truth - 1.0) * 100.0
    );
    assert!(truth > 1.9 * seconds * 0.9 || workload_mode == "leader-exit", "{workload_mode} burned {truth} s");
    let last_window = if mode == "procfs" { 0.25 } else { 0.0 };
    assert!(
        recorded <= truth * (1.0 + bound),
        "{mode} {workload_mode}: {recorded} s recorded vs {truth} s: counted twice"
    );
    assert!(
        recorded >= truth * (1.0 - bound) - last_window,
        "{mode} {workload_mode}: {recorded} s recorded vs {truth} s: lost"
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
    // 3 s as on the kernel where the loss was found. The truth (getrusage
    // at the workload's end) lacks the exit's teardown: 0.2 ms here, ~10 ms
    // under QEMU's emulation (cargo xtask test-kernel).
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
}

#[test]
fn leader_exit_procfs() {
    check("procfs", false, "leader-exit", 3.0, 0.03);
}

#[test]
fn thread_exec_procfs() {
    check("procfs", false, "thread-exec", 1.5, 0.03);
}
