//! Processes whose threads end in unusual orders: a main thread that calls
//! pthread_exit while a worker runs on, and a non-main thread that calls
//! exec (the kernel kills the main thread; the exec'ing thread takes over
//! its pid). Nothing is lost and nothing counted twice, in both modes, and
//! in ebpf mode also on the path kernels before 6.16 take (no `group_dead`
//! argument at sched_process_exit: `signal->live` decides).
//!
//! Truth in ebpf mode (root): the workload moves itself into a cgroup made
//! by the test at its start. The cgroup's usage once the process has been
//! reaped, plus what it used before the move, is its whole CPU time; as
//! the point in the move's write where the kernel switches the charge is
//! not known, the truth is the interval from its CPU before that write to
//! its CPU after it (microseconds wide here, a few milliseconds under
//! QEMU's emulation). That includes the exit's teardown, which getrusage
//! at the workload's end cannot see (0.2 ms here, 5 to 16 ms under QEMU's
//! emulation in `cargo xtask test-kernel`, where it alone broke a 0.5 %
//! bound against getrusage). Without root (procfs tests run unprivileged
//! too) the truth is getrusage.

use messer_tests::servers::Cgroup;
use messer_tests::*;

/// What one recording gave: CPU seconds recorded, the true CPU seconds
/// (an interval, see above), exit events, the process table's rows.
struct Recorded {
    recorded: f64,
    truth: (f64, f64),
    exits: usize,
    info: serde_json::Value,
}

/// Records `workload MODE --seconds S` launched by messer. `cgroup`: the
/// truth is the workload's cgroup (see above), else the getrusage it
/// reports.
fn record(mode: &str, env_old_kernel: bool, workload_mode: &str, seconds: f64, cgroup: bool) -> Recorded {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.h5");
    let mut c = messer();
    if env_old_kernel {
        c.env("MESSER_TEST_EXIT_WITHOUT_GROUP_DEAD", "1");
    }
    let cg = cgroup.then(|| Cgroup::new(&format!("messer-test-exits-{workload_mode}")));
    if let Some(cg) = &cg {
        c.env("MESSER_WORKLOAD_CGROUP", &cg.path);
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
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("workload JSON");
            let before = v["cpu_before_move_ns"].as_f64().expect("cpu_before_move_ns") / 1e9;
            let after = v["cpu_after_move_ns"].as_f64().expect("cpu_after_move_ns") / 1e9;
            let usage = cg.usage_usec() as f64 / 1e6;
            eprintln!(
                "{mode} {workload_mode}: cgroup {usage:.4} s + {:.2} .. {:.2} ms around the move, getrusage at the end {reported:.4} s",
                before * 1e3,
                after * 1e3
            );
            (usage + before, usage + after)
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
    let ev = read_table(&out, "messer_events", &["kind"]);
    let kinds: Vec<String> =
        ev["kind"].as_array().unwrap().iter().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    let exits = kinds.iter().filter(|k| *k == "exit").count();
    let info = read_table(&out, "messer_process_info", &["pid", "cpu_seconds"]);
    Recorded { recorded, truth, exits, info }
}

/// `bound`: relative; procfs mode also loses what the threads ran after the
/// last read before the process ended (at most one interval, 0.25 s, of one
/// busy thread: /proc no longer shows them), allowed absolutely.
fn check(mode: &str, old_kernel: bool, workload_mode: &str, seconds: f64, bound: f64) {
    let Recorded { recorded, truth: (low, high), exits, info } =
        record(mode, old_kernel, workload_mode, seconds, mode == "ebpf");
    let off = |t: f64| (recorded / t - 1.0) * 100.0;
    eprintln!(
        "{mode}{} {workload_mode}: recorded {recorded:.4} s, truth {low:.4} .. {high:.4} s ({:+.3} .. {:+.3} %), exit events {exits}, process_info {info}",
        if old_kernel { " (signal->live)" } else { "" },
        off(high),
        off(low)
    );
    assert!(low > 1.9 * seconds * 0.9 || workload_mode == "leader-exit", "{workload_mode} burned {low} s");
    let last_window = if mode == "procfs" { 0.25 } else { 0.0 };
    assert!(
        recorded <= high * (1.0 + bound),
        "{mode} {workload_mode}: {recorded} s recorded vs {low} .. {high} s: counted twice"
    );
    assert!(
        recorded >= low * (1.0 - bound) - last_window,
        "{mode} {workload_mode}: {recorded} s recorded vs {low} .. {high} s: lost"
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
}

#[test]
fn leader_exit_procfs() {
    check("procfs", false, "leader-exit", 3.0, 0.03);
}

#[test]
fn thread_exec_procfs() {
    check("procfs", false, "thread-exec", 1.5, 0.03);
}
