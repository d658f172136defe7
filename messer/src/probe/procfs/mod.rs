//! The procfs probe: CPU time of the tracked tree from /proc alone.
//!
//! On-CPU time is the sum of every thread's `schedstat` run time (ns, exact at
//! the moment of reading); new threads and processes count from their birth.
//! A thread that exits during a window takes the part of its run time since
//! the previous read with it: /proc no longer shows it (the eBPF probe does
//! not have this gap).

pub mod parse;
pub mod root;
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
    split: SplitTicks,
}

impl ProcfsProbe {
    pub fn new(proc: ProcRoot, target: i32, follow_children: bool) -> Self {
        Self {
            proc,
            target,
            follow_children,
            run_ns: DeltaTracker::default(),
            split: SplitTicks::default(),
        }
    }

    fn read_process(&mut self, pid: i32, on_cpu_ns: &mut u64) -> Result<(), ReadError> {
        let stat = self.proc.stat(pid)?;
        for tid in self.proc.tasks(pid)? {
            match self.proc.task_run_ns(pid, tid) {
                Ok(ns) => *on_cpu_ns += self.run_ns.observe((pid, stat.starttime, tid), ns),
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        self.split.observe(&stat);
        Ok(())
    }
}

impl Probe for ProcfsProbe {
    fn read(&mut self) -> Result<Reading, ProbeError> {
        let span = Span::start();
        let pids = if self.follow_children {
            tree::descendants(&self.proc, self.target)
        } else {
            vec![self.target]
        };
        let mut on_cpu_ns = 0;
        let mut num_processes = 0;
        for pid in pids {
            match self.read_process(pid, &mut on_cpu_ns) {
                Ok(()) => num_processes += 1,
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(ProbeError::Procfs(e)),
            }
        }
        let mono_ns = span.end();
        self.run_ns.commit();
        let (user_ticks, system_ticks) = self.split.commit();
        Ok(Reading {
            mono_ns,
            cpu: CpuWindow {
                on_cpu_ns: i64::try_from(on_cpu_ns).unwrap_or(i64::MAX),
                user_ticks,
                system_ticks,
            },
            num_processes,
            extra: Vec::new(),
        })
    }
}
