//! `--threads` in procfs mode: each thread's window from its schedstat
//! (run time and run-queue wait, the gains the tree's figures are made of),
//! its stat (name, and utime/stime ticks for the user/system split) and its
//! status (voluntary and involuntary switches). Two more small reads per
//! thread per window. A thread that lived less than a window is not seen;
//! a thread's switches are missing in the first window it is seen in.

use super::ProcRoot;
use crate::probe::delta::DeltaTracker;
use crate::probe::{CpuWindow, ThreadWindow};

/// A thread: its process, the process's start time, its id.
type Key = (i32, u64, i32);

#[derive(Default)]
pub struct ThreadFigures {
    utime: DeltaTracker<Key>,
    stime: DeltaTracker<Key>,
    voluntary: DeltaTracker<Key>,
    involuntary: DeltaTracker<Key>,
    window: Vec<ThreadWindow>,
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of a status text.
fn switches(status: &str) -> Option<(u64, u64)> {
    let field =
        |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.trim().parse::<u64>().ok());
    Some((field("voluntary_ctxt_switches:")?, field("nonvoluntary_ctxt_switches:")?))
}

impl ThreadFigures {
    /// Thread `key` gained `run_ns` on CPU and waited `wait_ns` in this window.
    pub fn observe(&mut self, proc: &ProcRoot, key: Key, run_ns: u64, wait_ns: u64) {
        let (pid, _, tid) = key;
        let stat = proc.task_stat(pid, tid).ok();
        let (user_ticks, system_ticks) = match &stat {
            Some(s) => (self.utime.observe(key, s.utime), self.stime.observe(key, s.stime)),
            None => (0, 0),
        };
        let sw = proc.read(format!("{pid}/task/{tid}/status")).ok().and_then(|t| switches(&t));
        let (voluntary, involuntary) = match sw {
            Some((v, i)) => {
                let known = self.voluntary.previous(&key).is_some();
                let (dv, di) = (self.voluntary.observe(key, v), self.involuntary.observe(key, i));
                if known { (Some(dv), Some(di)) } else { (None, None) }
            }
            None => (None, None),
        };
        self.window.push(ThreadWindow {
            pid,
            tid,
            comm: stat.map(|s| s.comm).unwrap_or_default(),
            cpu: CpuWindow { on_cpu_ns: i64::try_from(run_ns).unwrap_or(i64::MAX), user_ticks, system_ticks },
            runq_wait_ns: wait_ns,
            switches_voluntary: voluntary,
            switches_involuntary: involuntary,
        });
    }

    /// Ends a snapshot.
    pub fn commit(&mut self) {
        self.utime.commit();
        self.stime.commit();
        self.voluntary.commit();
        self.involuntary.commit();
    }

    /// The window's threads (taken once per read).
    pub fn take(&mut self) -> Vec<ThreadWindow> {
        std::mem::take(&mut self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_switch_counts() {
        let s = "Name:\tx\nvoluntary_ctxt_switches:\t12\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(switches(s), Some((12, 3)));
        assert_eq!(switches("Name:\tx\n"), None);
    }
}
