//! The procfs probe: CPU time of the tracked tree from /proc alone.
//!
//! On-CPU time is the sum of every thread's `schedstat` run time (ns, exact at
//! the moment of reading); new threads and processes count from their birth.
//! A thread that exits during a window takes the part of its run time since
//! the previous read with it: /proc no longer shows it (the eBPF probe does
//! not have this gap).

pub mod figures;
pub mod host;
pub mod kv;
pub mod parse;
pub mod process;
pub mod root;
pub mod system;
#[cfg(test)]
mod testutil;
pub mod ticks;
pub mod tree;

use crate::probe::delta::DeltaTracker;
use crate::probe::{CpuWindow, Probe, ProbeError, Reading, Span};
pub use root::{ProcRoot, ReadError};
use ticks::SplitTicks;

/// Reads the tracked tree from /proc.
pub struct ProcfsProbe {
    proc: ProcRoot,
    target: i32,
    follow_children: bool,
    run_ns: DeltaTracker<(i32, u64, i32)>,
    switches: DeltaTracker<(i32, u64, i32)>,
    split: SplitTicks,
    figures: figures::TreeFigures,
    system: system::SystemProbe,
    host: host::Host,
}

impl ProcfsProbe {
    pub fn new(proc: ProcRoot, target: i32, follow_children: bool, reads: process::Reads) -> Self {
        Self {
            figures: figures::TreeFigures::new(proc.clone(), reads, true),
            system: system::SystemProbe::new(proc.clone(), "/sys"),
            host: host::Host::new(&proc),
            proc,
            target,
            follow_children,
            run_ns: DeltaTracker::default(),
            switches: DeltaTracker::default(),
            split: SplitTicks::default(),
        }
    }

    /// Adds process `pid`'s threads' CPU time and switch-ins; returns its
    /// stat and its own CPU window.
    fn read_process(
        &mut self,
        pid: i32,
        on_cpu_ns: &mut u64,
        switches: &mut u64,
    ) -> Result<(parse::Stat, CpuWindow), ReadError> {
        let stat = self.proc.stat(pid)?;
        let mut own_ns = 0;
        for tid in self.proc.tasks(pid)? {
            match self.proc.task_schedstat(pid, tid) {
                Ok((ns, pcount)) => {
                    let key = (pid, stat.starttime, tid);
                    own_ns += self.run_ns.observe(key, ns);
                    *switches += self.switches.observe(key, pcount);
                }
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        *on_cpu_ns += own_ns;
        let (user_ticks, system_ticks) = self.split.observe(&stat);
        let own = CpuWindow { on_cpu_ns: i64::try_from(own_ns).unwrap_or(i64::MAX), user_ticks, system_ticks };
        Ok((stat, own))
    }
}

impl Probe for ProcfsProbe {
    fn columns(&self) -> Vec<crate::sink::table::Column> {
        let mut c = vec![
            crate::probe::measure::float("proc_cpu_num_used"),
            crate::probe::measure::float("proc_ctx_switch_rate_hz"),
        ];
        c.extend(self.figures.columns());
        c.extend(self.system.columns());
        c
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        let span = Span::start();
        let pids = if self.follow_children { tree::descendants(&self.proc, self.target) } else { vec![self.target] };
        let mut on_cpu_ns = 0;
        let mut switches = 0;
        let mut stats = Vec::with_capacity(pids.len());
        let mut cpus = Vec::with_capacity(pids.len());
        for pid in pids {
            match self.read_process(pid, &mut on_cpu_ns, &mut switches) {
                Ok((stat, cpu)) => {
                    stats.push(stat);
                    cpus.push(cpu);
                }
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(ProbeError::Procfs(e)),
            }
        }
        // The CPU figures' instant; the momentary ones below follow it.
        let mono_ns = span.end();
        self.run_ns.commit();
        self.switches.commit();
        let (user_ticks, system_ticks) = self.split.commit();
        // Distinct CPUs the processes' main threads were last on.
        let used: std::collections::HashSet<u32> = stats.iter().filter_map(|s| s.processor).collect();
        let mut extra =
            vec![crate::probe::Measure::Value(used.len() as f64), crate::probe::Measure::PerSecond(switches as f64)];
        let (tree, rw) = self.figures.read(&stats)?;
        extra.extend(tree);
        extra.extend(self.system.read()?);
        let processes =
            stats.iter().zip(cpus).map(|(s, cpu)| self.host.window(s, cpu, rw.get(&s.pid).copied())).collect();
        Ok(Reading {
            mono_ns,
            cpu: CpuWindow { on_cpu_ns: i64::try_from(on_cpu_ns).unwrap_or(i64::MAX), user_ticks, system_ticks },
            num_processes: stats.len() as u32,
            extra,
            processes,
        })
    }
}
