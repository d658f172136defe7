//! The tracked set follows the process tree: new child processes of tracked
//! processes join it in the kernel, new threads of tracked processes join the
//! thread map, and a process whose whole thread group has exited is marked so
//! that the loader can retire it after a final read.
//!
//! `task_newtask` is used rather than `sched_process_fork` because only it
//! carries `clone_flags`, which tells a new process from a new thread.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::raw_tracepoint, programs::RawTracePointContext};
use messer_common::{CLONE_THREAD, EpochCounters, THREAD_SUM_VALID, TRACKED_EXITED, ThreadState, Tracked, stat};

use crate::maps::{BPF_NOEXIST, COUNTERS, THREADS, TRACKED, bump, config, is_tracked, read_field};

/// `task_newtask(struct task_struct *task, u64 clone_flags)`, run by the
/// parent (`current`) in copy_process().
#[raw_tracepoint(tracepoint = "task_newtask")]
pub fn task_newtask(ctx: RawTracePointContext) -> i32 {
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(parent_tgid) {
        return 0;
    }
    let cfg = config();
    let task: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    let Some(pid) = read_field::<u32>(task, cfg.task_pid) else {
        return 0;
    };
    if flags & CLONE_THREAD != 0 {
        add_thread(pid, parent_tgid);
        return 0;
    }
    if cfg.follow_children == 0 {
        return 0;
    }
    let entry = Tracked { parent_tgid, flags: 0 };
    if TRACKED.insert(pid, entry, 0).is_err() {
        bump(stat::TRACKED_INSERT_FAILED);
        return 0;
    }
    // A fresh entry: a reused pid must not inherit an old process's counts.
    if COUNTERS.insert(pid, EpochCounters::default(), 0).is_err() {
        bump(stat::COUNTERS_INSERT_FAILED);
    }
    add_thread(pid, pid);
    0
}

#[inline(always)]
fn add_thread(tid: u32, tgid: u32) {
    // A new task's sum_exec_runtime starts at 0.
    let t = ThreadState { tgid, flags: THREAD_SUM_VALID, runnable_since_ns: 0, sum_exec_ns: 0 };
    if THREADS.insert(tid, t, BPF_NOEXIST).is_err() && THREADS.get_ptr(tid).is_none() {
        bump(stat::THREAD_INSERT_FAILED);
    }
}

/// `sched_process_exit(struct task_struct *p[, bool group_dead])`, run by
/// the exiting thread.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let Some(entry) = TRACKED.get_ptr_mut(tgid) else {
        return 0;
    };
    let _ = THREADS.remove(pid_tgid as u32);
    let group_dead =
        if config().exit_has_group_dead != 0 { ctx.arg::<u64>(1) & 0xff != 0 } else { pid_tgid as u32 == tgid };
    if group_dead {
        // SAFETY: map value pointer from a successful lookup.
        unsafe { (*entry).flags |= TRACKED_EXITED }
    }
    0
}
