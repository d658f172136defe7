//! The tracked set follows the process tree: new child processes of tracked
//! processes join it in the kernel, and a process whose whole thread group has
//! exited is marked so that the loader can retire it after a final read.
//!
//! `task_newtask` is used rather than `sched_process_fork` because only it
//! carries `clone_flags`, which tells a new process from a new thread.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use messer_common::{CLONE_THREAD, ProcCounters, TRACKED_EXITED, Tracked, stat};

use crate::maps::{COUNTERS, TRACKED, bump, config, is_tracked};

#[tracepoint]
pub fn task_newtask(ctx: TracePointContext) -> u32 {
    let cfg = config();
    if cfg.follow_children == 0 {
        return 0;
    }
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_tracked(parent_tgid) {
        return 0;
    }
    // SAFETY: offsets come from this kernel's tracefs format file.
    let (Ok(flags), Ok(pid)) = (unsafe { ctx.read_at::<u64>(cfg.newtask_clone_flags as usize) }, unsafe {
        ctx.read_at::<u32>(cfg.newtask_pid as usize)
    }) else {
        return 0;
    };
    if flags & CLONE_THREAD != 0 {
        return 0;
    }
    let entry = Tracked { parent_tgid, flags: 0 };
    if TRACKED.insert(pid, entry, 0).is_err() {
        bump(stat::TRACKED_INSERT_FAILED);
        return 0;
    }
    if COUNTERS.insert(pid, ProcCounters::default(), 0).is_err() {
        bump(stat::COUNTERS_INSERT_FAILED);
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let Some(entry) = TRACKED.get_ptr_mut(tgid) else {
        return 0;
    };
    let off = config().exit_group_dead;
    let group_dead = if off == u32::MAX {
        pid_tgid as u32 == tgid
    } else {
        // SAFETY: offset from this kernel's tracefs format file.
        matches!(unsafe { ctx.read_at::<u8>(off as usize) }, Ok(v) if v != 0)
    };
    if group_dead {
        // SAFETY: map value pointer from a successful lookup.
        unsafe { (*entry).flags |= TRACKED_EXITED }
    }
    0
}
