//! `--threads`: each tracked thread's own window. The kernel side adds
//! each thread's stints, waits, switches and ticks to its thread-map entry,
//! per epoch parity of the CPU it ran on, at the same moments it adds them
//! to its process's counters; after a flush the closing epoch's parity is
//! still, and its gain since that parity was last read is the thread's
//! window. A dead thread's entry stays until the epoch of its last
//! switch-out has been read, so that a thread that lived 1 ms has its row.
//! An entry is a kernel task (`ThreadState::task`): after a thread exec the
//! exec'ing thread's entry is under the process's id and the dead main
//! thread's under the exec'ing thread's old one, and each goes on from its
//! own last reading.

use std::collections::{HashMap, HashSet};

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData};
use messer_common::{THREAD_DEAD, ThreadCounts, ThreadState};

use super::EbpfError;
use super::batch::BatchReader;
use crate::probe::procfs::ProcRoot;
use crate::probe::{CpuWindow, ThreadWindow};

/// What the loader remembers of each thread.
pub struct Threads {
    /// Per thread id: the task its entry was (0: not known yet) and each
    /// parity's counts at their last reading.
    prev: HashMap<u32, (u64, [ThreadCounts; 2])>,
    /// Per thread: its name as last read.
    comms: HashMap<u32, String>,
    batch: BatchReader,
}

/// The thread map.
fn typed(bpf: &mut Ebpf) -> Result<BpfHashMap<&mut MapData, u32, ThreadState>, EbpfError> {
    let map = bpf.map_mut("THREADS").ok_or_else(|| EbpfError::Map("no map THREADS".into()))?;
    BpfHashMap::try_from(map).map_err(EbpfError::map)
}

/// `now - before`, or `now` whole when the entry was made anew since
/// (its counts started again from 0).
fn gain(now: &ThreadCounts, before: &ThreadCounts) -> ThreadCounts {
    let fields = |c: &ThreadCounts| {
        [c.on_cpu_ns, c.runq_wait_ns, c.switches_voluntary, c.switches_involuntary, c.user_ns, c.system_ns]
    };
    let (n, b) = (fields(now), fields(before));
    if n.iter().zip(&b).any(|(n, b)| n < b) {
        return *now;
    }
    ThreadCounts {
        on_cpu_ns: n[0] - b[0],
        runq_wait_ns: n[1] - b[1],
        switches_voluntary: n[2] - b[2],
        switches_involuntary: n[3] - b[3],
        user_ns: n[4] - b[4],
        system_ns: n[5] - b[5],
    }
}

impl Threads {
    /// The reader of the loaded object's thread map.
    pub fn new(bpf: &Ebpf) -> Result<Self, EbpfError> {
        Ok(Self { prev: HashMap::new(), comms: HashMap::new(), batch: BatchReader::of(bpf, "THREADS")? })
    }

    /// The window of epoch `closing` of every thread of the `tracked`
    /// processes; entries of threads dead by then are removed.
    pub fn read(
        &mut self,
        bpf: &mut Ebpf,
        proc: &ProcRoot,
        tracked: &HashSet<u32>,
        closing: u64,
    ) -> Result<Vec<ThreadWindow>, EbpfError> {
        let entries = match self.batch.read::<u32, ThreadState>()? {
            Some(e) => e,
            // An entry removed while we walk the map is simply not there.
            None => typed(bpf)?.iter().filter_map(Result::ok).collect(),
        };
        let mut out = Vec::with_capacity(entries.len());
        let mut done = Vec::new();
        // Entries now of another task than their id's last reading (after a
        // thread exec) wait until every such reading has been put aside.
        let mut moved: HashMap<u64, [ThreadCounts; 2]> = HashMap::new();
        let mut other_task = Vec::new();
        for (tid, t) in entries {
            if !tracked.contains(&t.tgid) {
                continue;
            }
            let (task, counts) = self.prev.entry(tid).or_default();
            if t.task != 0 && *task != t.task {
                if *task != 0 {
                    moved.insert(*task, *counts);
                    other_task.push((tid, t));
                    continue;
                }
                *task = t.task;
            }
            self.row(proc, tid, &t, closing, &mut out, &mut done);
        }
        for (tid, t) in other_task {
            // Its task's own last reading, or none (a new thread).
            self.prev.insert(tid, (t.task, moved.get(&t.task).copied().unwrap_or_default()));
            self.row(proc, tid, &t, closing, &mut out, &mut done);
        }
        let mut threads = typed(bpf)?;
        for tid in done {
            let _ = threads.remove(&tid);
            self.prev.remove(&tid);
            self.comms.remove(&tid);
        }
        out.sort_by_key(|w| (w.pid, w.tid));
        Ok(out)
    }

    /// Thread `tid`'s window of epoch `closing` from its entry `t`, against
    /// its last reading (`prev`, whose task is the entry's); its entry is
    /// marked for removal once its last window is read.
    fn row(
        &mut self,
        proc: &ProcRoot,
        tid: u32,
        t: &ThreadState,
        closing: u64,
        out: &mut Vec<ThreadWindow>,
        done: &mut Vec<u32>,
    ) {
        let p = (closing & 1) as usize;
        let (_, prev) = self.prev.entry(tid).or_default();
        let d = gain(&t.half[p], &prev[p]);
        prev[p] = t.half[p];
        if t.flags & THREAD_DEAD != 0 && t.dead_epoch <= closing {
            done.push(tid);
        }
        // The name the kernel side took at the thread's last switch-out;
        // /proc only for a thread not switched out since it was seeded.
        let name = crate::probe::event::comm_text(&t.comm);
        if !name.is_empty() {
            if self.comms.get(&tid) != Some(&name) {
                self.comms.insert(tid, name);
            }
        } else if !self.comms.contains_key(&tid)
            && let Ok(c) = proc.read(format!("{}/task/{tid}/comm", t.tgid))
        {
            self.comms.insert(tid, c.trim_end_matches('\n').to_string());
        }
        out.push(ThreadWindow {
            pid: t.tgid as i32,
            tid: tid as i32,
            comm: self.comms.get(&tid).cloned().unwrap_or_default(),
            cpu: CpuWindow { on_cpu_ns: d.on_cpu_ns as i64, user_ticks: d.user_ns, system_ticks: d.system_ns },
            runq_wait_ns: d.runq_wait_ns,
            switches_voluntary: Some(d.switches_voluntary),
            switches_involuntary: Some(d.switches_involuntary),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_entry_under_an_old_id_counts_from_zero() {
        let a = ThreadCounts { on_cpu_ns: 10, switches_voluntary: 2, ..Default::default() };
        let b = ThreadCounts { on_cpu_ns: 25, switches_voluntary: 3, ..Default::default() };
        assert_eq!(gain(&b, &a).on_cpu_ns, 15);
        assert_eq!(gain(&a, &b), a);
    }
}
