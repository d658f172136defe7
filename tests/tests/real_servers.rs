//! A real server with a process per connection: PostgreSQL from Debian's
//! packages under `pgbench -C` (a new backend for every transaction),
//! recorded with `--comm postgres`. Truth: the cgroup the server runs in
//! (cgroup v2 cpu.stat usage_usec).

use messer_tests::servers::{Cgroup, Postgres};
use messer_tests::*;

/// What a recording of the server said, and the truth over the same span.
struct Recorded {
    truth_s: f64,
    tree_s: f64,
    per_process_s: f64,
    info_rows: usize,
    /// Distinct (pid, start) in /messer_processes.
    process_rows_distinct: usize,
    exits: usize,
    exits_with_status: usize,
    forks: usize,
    pss_rows: usize,
    rows: usize,
    credits: f64,
}

fn record_pgbench(mode: &str, seconds: u32) -> Recorded {
    let dir = tempfile::tempdir().unwrap();
    let cgroup = Cgroup::new("messer-test-pg");
    let pg = Postgres::start(dir.path(), &cgroup);
    pg.pgbench(&["-i", "-q", "-s", "1"]);
    let out = dir.path().join("pg.h5");
    let o = out.display().to_string();
    let (child, log) = start_recording(&["--mode", mode, "--comm", "postgres", "--interval", "0.5", "-o", &o]);
    // The server is idle now: the truth's span starts with the recording's.
    let u0 = cgroup.usage_usec();
    let text = pg.pgbench(&["-C", "-c", "4", "-j", "2", "-T", &seconds.to_string(), "-n"]);
    std::thread::sleep(std::time::Duration::from_millis(700));
    let u1 = cgroup.usage_usec();
    assert_eq!(interrupt(child), Some(0), "{}", log.lock().unwrap());
    let tps = text.lines().find(|l| l.starts_with("tps")).unwrap_or("").to_string();
    eprintln!("{mode}: pgbench {tps}");
    drop(pg);

    let t = read_table(
        &out,
        "messer_timeseries",
        &["proc_cpu_util_percent_total", "window_seconds", "proc_mem_pss"],
    );
    let cpu = column(&t, "proc_cpu_util_percent_total");
    let w = column(&t, "window_seconds");
    let tree_s: f64 = cpu.iter().zip(&w).map(|(c, w)| c.unwrap_or(0.0) / 100.0 * w.unwrap_or(0.0)).sum();
    let pss_rows = column(&t, "proc_mem_pss").iter().filter(|v| v.is_some()).count();
    let info = read_table(&out, "messer_process_info", &["pid", "cpu_seconds", "cpu_credits", "exit_status", "comm"]);
    let per_process_s: f64 = column(&info, "cpu_seconds").iter().flatten().sum();
    let credits: f64 = column(&info, "cpu_credits").iter().flatten().sum();
    let statuses = column(&info, "exit_status");
    let procs = read_table(&out, "messer_processes", &["pid", "start_unixtime"]);
    let distinct: std::collections::BTreeSet<(u64, u64)> = column(&procs, "pid")
        .iter()
        .zip(column(&procs, "start_unixtime"))
        .map(|(p, s)| (p.unwrap_or(0.0) as u64, s.unwrap_or(f64::NAN).to_bits()))
        .collect();
    let ev = read_table(&out, "messer_events", &["kind"]);
    let kinds: Vec<String> = ev["kind"].as_array().unwrap().iter().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    Recorded {
        truth_s: (u1 - u0) as f64 / 1e6,
        tree_s,
        per_process_s,
        info_rows: statuses.len(),
        process_rows_distinct: distinct.len(),
        exits: kinds.iter().filter(|k| *k == "exit").count(),
        exits_with_status: statuses.iter().filter(|s| s.is_some()).count(),
        forks: kinds.iter().filter(|k| *k == "fork").count(),
        pss_rows,
        rows: cpu.len(),
        credits,
    }
}

fn report(mode: &str, r: &Recorded) {
    eprintln!(
        "{mode}: truth {:.3} s; tree {:.3} s ({:.2} %); per-process {:.3} s ({:.2} % of the tree); \
         process_info rows {} (distinct in /messer_processes {}, forks {}, exits {}, with exit status {}); \
         credits {:.4}; PSS in {} of {} rows",
        r.truth_s,
        r.tree_s,
        r.tree_s / r.truth_s * 100.0,
        r.per_process_s,
        r.per_process_s / r.tree_s * 100.0,
        r.info_rows,
        r.process_rows_distinct,
        r.forks,
        r.exits,
        r.exits_with_status,
        r.credits,
        r.pss_rows,
        r.rows
    );
}

#[test]
fn postgres_fork_per_connection_ebpf() {
    if !require_root("postgres_fork_per_connection_ebpf") {
        return;
    }
    let r = record_pgbench("ebpf", 5);
    report("ebpf", &r);
    // Hundreds natively, tens under emulation (cargo xtask test-kernel).
    assert!(r.forks > 30, "pgbench -C made a backend per transaction: {} forks", r.forks);
    assert!((r.tree_s / r.truth_s - 1.0).abs() <= 0.005, "tree {} s vs cgroup {} s", r.tree_s, r.truth_s);
    assert!((r.per_process_s / r.tree_s - 1.0).abs() <= 0.005, "per-process {} s vs tree {} s", r.per_process_s, r.tree_s);
    // Every backend is in the tables: one process_info row per process.
    assert_eq!(r.info_rows, r.process_rows_distinct, "one process_info row per process of /messer_processes");
    assert!(r.info_rows >= r.forks, "{} rows for {} forks", r.info_rows, r.forks);
    assert!(r.exits_with_status >= r.exits.saturating_sub(2), "{} of {} exits have a status", r.exits_with_status, r.exits);
    assert!((r.credits - r.per_process_s / 60.0).abs() < 1e-6);
    // PSS is reported, not asserted: backends exiting while they are read
    // no longer make the memory sums missing (unit test in
    // probe/procfs/process.rs), but smaps_rollup is read only as often as
    // its CPU budget allows (README: 0.1 % of a core), so in a few rows.
}

#[test]
fn postgres_fork_per_connection_procfs() {
    if !require_root("postgres_fork_per_connection_procfs") {
        return;
    }
    let r = record_pgbench("procfs", 5);
    report("procfs", &r);
    assert!(r.tree_s >= 0.95 * r.truth_s, "procfs tree {} s vs cgroup {} s", r.tree_s, r.truth_s);
    assert!(r.tree_s <= 1.03 * r.truth_s, "procfs tree {} s vs cgroup {} s: counted twice", r.tree_s, r.truth_s);
}
