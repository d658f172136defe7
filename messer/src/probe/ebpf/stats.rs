//! The cost of our own programs (kernel BPF run-time statistics, switched on
//! with `--bpf-stats` for the recording through BPF_ENABLE_STATS and off
//! again when messer exits) and the kernel side's failure counters.
//!
//! Statistics are opt-in: while on, the kernel times every run of every BPF
//! program on the machine (two clock reads per run), which slows what is
//! being measured.

use std::os::fd::OwnedFd;

use aya::Ebpf;
use aya::maps::PerCpuArray;
use messer_common::stat;

use super::load::{IO_FAMILIES, SWITCH_PROGRAM, TASK_PROGRAMS};

/// Window deltas of each program's run count and run time.
pub struct ProgramStats {
    /// Keeps kernel.bpf_stats_enabled on while open; None if the kernel
    /// refused (then the figures are missing).
    enabled: Option<OwnedFd>,
    names: Vec<&'static str>,
    prev: Vec<Option<(u64, u64)>>,
}

/// The programs whose cost is reported, in column order.
pub fn program_names(io: bool) -> Vec<&'static str> {
    let mut names = vec![SWITCH_PROGRAM.0];
    names.extend(TASK_PROGRAMS.iter().map(|(p, _, _)| *p));
    if io {
        names.extend(IO_FAMILIES.iter().map(|(p, _)| *p));
    }
    names.push("messer_flush");
    // The iterators: one run per task (or task file) they visit.
    names.extend([super::census::PROCESSES.0, super::census::CENSUS.0, super::census::SOCKETS.0]);
    names
}

impl ProgramStats {
    /// Statistics for our programs if `on`; without, no columns.
    pub fn new(io: bool, on: bool) -> Self {
        if !on {
            return Self { enabled: None, names: Vec::new(), prev: Vec::new() };
        }
        let enabled = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("cannot enable BPF run-time statistics ({e}): program cost will be missing");
                None
            }
        };
        let names = program_names(io);
        let prev = vec![None; names.len()];
        Self { enabled, names, prev }
    }

    pub fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// (runs, ns) per program since the previous call; None where unknown.
    pub fn read(&mut self, bpf: &Ebpf) -> Vec<Option<(u64, u64)>> {
        let mut out = Vec::with_capacity(self.names.len());
        for (i, name) in self.names.iter().enumerate() {
            let now = self
                .enabled
                .as_ref()
                .and_then(|_| bpf.program(name))
                .and_then(|p| p.info().ok())
                .map(|info| (info.run_count(), info.run_time().as_nanos() as u64));
            let delta = match (now, self.prev[i]) {
                (Some((c, t)), Some((pc, pt))) => Some((c.wrapping_sub(pc), t.wrapping_sub(pt))),
                _ => None,
            };
            self.prev[i] = now;
            out.push(delta);
        }
        out
    }
}

/// Cumulative failure counts of the kernel side, indexed by `stat::*`,
/// summed over CPUs (one map lookup: one entry holds them all); None if
/// the map cannot be read.
pub fn failures(bpf: &Ebpf) -> Option<[u64; stat::COUNT as usize]> {
    let map = bpf.map("STATS")?;
    let stats: PerCpuArray<_, [u64; stat::COUNT as usize]> = PerCpuArray::try_from(map).ok()?;
    let per_cpu = stats.get(&0, 0).ok()?;
    let mut out = [0; stat::COUNT as usize];
    for counts in per_cpu.iter() {
        for (o, c) in out.iter_mut().zip(counts) {
            *o += c;
        }
    }
    Some(out)
}

/// The cumulative count of failure `which` (`stat::*`), summed over CPUs.
pub fn failure(bpf: &Ebpf, which: u32) -> Option<u64> {
    failures(bpf)?.get(which as usize).copied()
}
