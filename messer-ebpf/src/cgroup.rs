//! Membership by cgroup (`--cgroup`): a process counts while it is in the
//! target cgroup v2 or below it. A new process is tested at its fork
//! (`task::task_newtask`); a process moved between cgroups (a write to
//! `cgroup.procs`) is tested at `cgroup_attach_task`, which the kernel
//! fires once per move, with the moved process's leader, after the move.
//! Nothing is tested at context switches: a task's cgroup changes only
//! through these two paths.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use messer_common::{JOIN_THREADS, TRACKED_EXITED, TRACKED_LEFT, event};

use crate::maps::{TRACKED, cgroup_target, config, emit, read_field, track};

/// Is cgroup `cgrp` (a `struct cgroup *`) the target or one below it? Its
/// ancestor at the target's level must be the target.
#[inline(always)]
fn inside(cgrp: u64) -> bool {
    let c = cgroup_target();
    let Some(level) = read_field::<i32>(cgrp, c.cgrp_level) else { return false };
    if level < c.level as i32 {
        return false;
    }
    let slot = u64::from(c.cgrp_ancestors) + 8 * u64::from(c.level);
    let Some(at) = cgrp.checked_add(slot) else { return false };
    let id = if c.ancestors_are_ids != 0 {
        read_field::<u64>(at, 0)
    } else {
        read_field::<u64>(at, 0)
            .and_then(|a| read_field::<u64>(a, c.cgrp_kn))
            .and_then(|kn| read_field::<u64>(kn, c.kn_id))
    };
    id == Some(c.id)
}

/// Is kernel task `task` in the target cgroup or below it?
#[inline(always)]
pub fn task_inside(task: u64) -> bool {
    let c = cgroup_target();
    match read_field::<u64>(task, c.task_cgroups).and_then(|cset| read_field::<u64>(cset, c.cset_dfl_cgrp)) {
        Some(cgrp) => inside(cgrp),
        None => false,
    }
}

/// Every thread of process `tgid` (leader `task`, thread id `tid`) counts
/// from now: the move holds the process's thread-group lock, so its thread
/// list (`signal->thread_head`, linked through `thread_node`) is complete
/// and still. Past `JOIN_THREADS` threads the loader seeds the rest.
#[inline(always)]
fn adopt_threads(task: u64, tid: u32, tgid: u32) {
    let c = cgroup_target();
    let cfg = config();
    let Some(head) =
        read_field::<u64>(task, cfg.task_signal).and_then(|s| s.checked_add(u64::from(c.signal_thread_head)))
    else {
        crate::task::adopt(task, tid, tgid);
        return;
    };
    let mut node = read_field::<u64>(head, 0).unwrap_or(head);
    for _ in 0..JOIN_THREADS {
        if node == head || node == 0 {
            return;
        }
        adopt_one(node.wrapping_sub(u64::from(c.task_thread_node)), tgid);
        node = read_field::<u64>(node, 0).unwrap_or(head);
    }
}

/// Thread `task` of `tgid` counts from now. A function of its own (a BPF
/// subprogram), so that the loop above is verified as a call per thread.
#[inline(never)]
fn adopt_one(task: u64, tgid: u32) {
    if let Some(tid) = read_field::<u32>(task, config().task_pid) {
        crate::task::adopt(task, tid, tgid);
    }
}

/// `cgroup_attach_task(struct cgroup *dst_cgrp, const char *path, struct
/// task_struct *task, bool threadgroup)`, run by whoever moved `task` (the
/// leader of the moved process; its threads moved with it).
#[raw_tracepoint(tracepoint = "cgroup_attach_task")]
pub fn cgroup_attach_task(ctx: RawTracePointContext) -> i32 {
    let dst: u64 = ctx.arg(0);
    let task: u64 = ctx.arg(2);
    let cfg = config();
    let (Some(tid), Some(tgid)) = (read_field::<u32>(task, cfg.task_pid), read_field::<u32>(task, cfg.task_tgid))
    else {
        return 0;
    };
    let now_inside = inside(dst);
    match TRACKED.get_ptr_mut(tgid) {
        Some(t) => {
            // SAFETY: map value pointer from a successful lookup.
            let t = unsafe { &mut *t };
            if t.flags & TRACKED_EXITED != 0 {
                return 0;
            }
            let left = t.flags & TRACKED_LEFT != 0;
            if !now_inside && !left {
                t.flags |= TRACKED_LEFT;
                emit(event::LEAVE, tgid, t.parent_tgid, 0);
            } else if now_inside && left {
                // Moved back before the loader retired it: it goes on,
                // its threads counting from now.
                t.flags &= !TRACKED_LEFT;
                adopt_threads(task, tid, tgid);
                emit(event::JOIN, tgid, t.parent_tgid, 0);
            }
        }
        None if now_inside => {
            if !track(tgid, 0) {
                return 0;
            }
            adopt_threads(task, tid, tgid);
            emit(event::JOIN, tgid, 0, 0);
        }
        None => {}
    }
    0
}
