//! A real switch-heavy server: PostgreSQL from Debian's packages under
//! `pgbench -S` (select-only, 8 clients over a unix socket), with and
//! without messer attached, in interleaved pairs; and the kernel-side tax
//! of the same load measured in one run (BPF run time per transaction
//! against the server's own CPU per transaction, from its cgroup).

use std::process::Command;

use anyhow::{Context as _, Result, bail};
use messer_tests::servers::{Cgroup, Postgres};

use super::{Bench, median};

/// "tps = 77123.4 (without initial connection time)" in pgbench's report.
fn tps(report: &str) -> Option<f64> {
    report.lines().find_map(|l| l.strip_prefix("tps = ")?.split_whitespace().next()?.parse().ok())
}

/// "number of transactions actually processed: N".
fn transactions(report: &str) -> Option<f64> {
    report.lines().find_map(|l| l.strip_prefix("number of transactions actually processed: ")?.trim().parse().ok())
}

pub fn pgbench(b: &mut Bench) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cg = Cgroup::new("messer-bench-pg");
    let pg = Postgres::start(dir.path(), &cg);
    pg.pgbench(&["-i", "-q", "-s", "1"]);
    let secs = if b.quick { "3" } else { "6" };
    let pairs = if b.quick { 3 } else { 10 };
    let load = ["-S", "-c", "8", "-j", "2", "-T", secs, "-n"];
    let out = b.dir.path().join("pgbench.h5");
    let variants: [(&str, &[&str], f64); 2] =
        [("ebpf", &["--mode", "ebpf"], 1.0), ("ebpf --io-syscalls", &["--mode", "ebpf", "--io-syscalls"], 3.0)];
    for (label, opts, limit) in variants {
        let mut ratios = Vec::new();
        for _ in 0..pairs {
            let alone = tps(&pg.pgbench(&load)).context("pgbench printed no tps")?;
            let m = b.start_attached("postgres", opts, &out)?;
            let with = tps(&pg.pgbench(&load));
            Bench::stop_attached(m)?;
            ratios.push((alone / with.context("pgbench printed no tps")? - 1.0) * 100.0);
        }
        let m = median(&mut ratios);
        b.check(
            &format!("PostgreSQL pgbench -S slowdown with messer {label} (median of {pairs} pairs)"),
            m,
            "%",
            Some(limit),
        );
        b.spread(&ratios);
    }
    // The tax, steadier than throughput pairs: one run with BPF statistics
    // (which themselves add to each program run) over the pgbench windows.
    for (label, opts) in [("ebpf", &["--io-syscalls"][..0]), ("ebpf --io-syscalls", &["--io-syscalls"][..])] {
        let args: Vec<&str> =
            ["--mode", "ebpf", "--bpf-stats", "--interval", "0.5"].into_iter().chain(opts.iter().copied()).collect();
        let m = b.start_attached("postgres", &args, &out)?;
        let t0 = super::mono_s();
        let u0 = cg.usage_usec();
        let report = pg.pgbench(&load);
        let u1 = cg.usage_usec();
        let t1 = super::mono_s();
        Bench::stop_attached(m)?;
        let n = transactions(&report).context("pgbench printed no transaction count")?;
        let bpf_ns = bpf_ns_between(b, &out, t0, t1)?;
        let server_ns = (u1 - u0) as f64 * 1000.0;
        b.check(
            &format!("PostgreSQL pgbench -S: BPF run time per transaction, messer {label}"),
            bpf_ns / n,
            "ns",
            None,
        );
        b.check(
            &format!(
                "  against the server's CPU per transaction ({:.1} us, its cgroup's cpu.stat)",
                server_ns / n / 1000.0
            ),
            bpf_ns / server_ns * 100.0,
            "%",
            Some(if opts.is_empty() { 1.0 } else { 3.0 }),
        );
    }
    drop(pg);
    Ok(())
}

/// Σ of every BPF program's run time (ns) in the windows of `file` that
/// lie within monotonic seconds `t0..t1`, scaled to that span.
fn bpf_ns_between(b: &Bench, file: &std::path::Path, t0: f64, t1: f64) -> Result<f64> {
    let script = "import sys, h5py, numpy as np\n\
        t = h5py.File(sys.argv[1], 'r')['messer_timeseries'][:]\n\
        t0, t1 = float(sys.argv[2]), float(sys.argv[3])\n\
        end = t['monotime']\n\
        start = end - t['window_seconds']\n\
        inside = (start >= t0) & (end <= t1)\n\
        ns = sum(np.nansum(t[n][inside]) for n in t.dtype.names if n.startswith('bpf_') and n.endswith('_run_time_ns'))\n\
        span = np.sum(t['window_seconds'][inside])\n\
        print(ns / span * (t1 - t0) if span > 0 else float('nan'))\n";
    let o = Command::new(b.root.join(".venv/bin/python"))
        .args(["-c", script])
        .arg(file)
        .args([t0.to_string(), t1.to_string()])
        .output()?;
    if !o.status.success() {
        bail!("reading {}: {}", file.display(), String::from_utf8_lossy(&o.stderr));
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().parse()?)
}
