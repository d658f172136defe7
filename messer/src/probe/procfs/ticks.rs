//! The user/system split of CPU time, from the kernel's own per-process
//! accounting in `/proc/<pid>/stat` (utime, stime).
//!
//! Both probes measure total on-CPU time exactly (in ns); the kernel's split
//! is tick-based, so messer applies the ratio of the window's utime and stime
//! deltas (summed over the tree) to the exact total. See README, "User and
//! system time".

use super::parse::Stat;
use crate::probe::delta::DeltaTracker;

/// Window deltas of utime and stime over a set of processes.
#[derive(Debug, Default)]
pub struct SplitTicks {
    user: DeltaTracker<(i32, u64)>,
    system: DeltaTracker<(i32, u64)>,
    window: (u64, u64),
}

impl SplitTicks {
    /// Adds one process's current stat to this read.
    /// Returns the process's own (user, system) ticks in the window.
    pub fn observe(&mut self, stat: &Stat) -> (u64, u64) {
        let key = (stat.pid, stat.starttime);
        let u = self.user.observe(key, stat.utime);
        let s = self.system.observe(key, stat.stime);
        self.window.0 += u;
        self.window.1 += s;
        (u, s)
    }

    /// Baselines a process that existed before it was tracked.
    pub fn prime(&mut self, stat: &Stat) {
        let key = (stat.pid, stat.starttime);
        self.user.prime(key, stat.utime);
        self.system.prime(key, stat.stime);
    }

    /// Ends a read; returns (user, system) ticks gained during the window.
    pub fn commit(&mut self) -> (u64, u64) {
        self.user.commit();
        self.system.commit();
        std::mem::take(&mut self.window)
    }
}
