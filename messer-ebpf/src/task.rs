//! The tracked set follows the process tree: new child processes of tracked
//! processes join it in the kernel, new threads of tracked processes join the
//! thread map, and a process whose whole thread group has exited is marked so
//! that the loader can retire it after a final read.
//!
//! `task_newtask` is used rather than `sched_process_fork` because only it
//! carries `clone_flags`, which tells a new process from a new thread.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use messer_common::{CLONE_THREAD, THREAD_SUM_VALID, TRACKED_EXITED, event, stat};

use crate::maps::{
    THREADS, TRACKED, bump, by_cgroup, config, config_ref, counting, current_comm, current_ids, emit, faults,
    insert_thread, is_tracked, parent_tgid, read_field, sched_info, set_mark, slot, ticks, track,
};

/// `task_newtask(struct task_struct *task, u64 clone_flags)`, run by the
/// parent (`current`) in copy_process().
#[raw_tracepoint(tracepoint = "task_newtask")]
pub fn task_newtask(ctx: RawTracePointContext) -> i32 {
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let task: u64 = ctx.arg(0);
    let flags: u64 = ctx.arg(1);
    if by_cgroup() && flags & CLONE_THREAD == 0 {
        return new_process_by_cgroup(task, parent_tgid);
    }
    if !counting(parent_tgid) {
        return 0;
    }
    let cfg = config();
    let Some(pid) = read_field::<u32>(task, cfg.task_pid) else {
        return 0;
    };
    if flags & CLONE_THREAD != 0 {
        add_thread(task, pid, parent_tgid);
        return 0;
    }
    if cfg.follow_children == 0 {
        return 0;
    }
    track_child(task, pid, parent_tgid);
    emit(event::FORK, pid, parent_tgid, 0);
    0
}

/// With `--cgroup`: a new process is tracked if it starts in the target
/// cgroup (its parent's, or another one given by clone3's
/// CLONE_INTO_CGROUP: task_newtask runs after cgroup_post_fork), whoever
/// its parent is.
#[inline(always)]
fn new_process_by_cgroup(task: u64, parent_tgid: u32) -> i32 {
    if !crate::cgroup::task_inside(task) {
        return 0;
    }
    let Some(pid) = read_field::<u32>(task, config().task_pid) else {
        return 0;
    };
    if counting(parent_tgid) {
        track_child(task, pid, parent_tgid);
        emit(event::FORK, pid, parent_tgid, 0);
    } else {
        track_child(task, pid, 0);
        emit(event::JOIN, pid, parent_tgid, 0);
    }
    0
}

/// New process `pid` (kernel task `task`, just forked by `parent_tgid`, 0
/// if that is not tracked) joins the tracked set with zero counters.
#[inline(always)]
fn track_child(task: u64, pid: u32, parent_tgid: u32) {
    if track(pid, parent_tgid) {
        add_thread(task, pid, pid);
    }
}

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct
/// linux_binprm *bprm)`, run by the task (now its process's only thread)
/// once the new program is in place and `comm` is its name.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let (tid, tgid) = current_ids();
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    if is_tracked(tgid) {
        // Its id before the exec: another than now when a thread other
        // than the main one called exec.
        let old = ctx.arg::<u64>(1) as u32;
        if old != tid {
            ids_exchanged(old, tid);
        }
        emit(event::EXEC, tgid, parent_tgid(task), 0);
        return 0;
    }
    let cfg = config();
    if cfg.match_comm == 0 || current_comm() != cfg.comm {
        return 0;
    }
    // A new instance of the program we wait for: count it from now on.
    if !track(tgid, 0) {
        return 0;
    }
    // Its stint so far predates the program: settle from here.
    adopt(task, tid, tgid);
    emit(event::MATCH, tgid, parent_tgid(task), 0);
    0
}

/// A thread other than the main one called exec: the kernel has killed the
/// main thread and exchanged the two threads' ids (`de_thread`), so the
/// thread that exec'd, `old` until now, is `new` (the process's id) and
/// the dead main thread holds `old` until it is released. The thread map,
/// the marks and this CPU's slot follow the exchange: the thread goes on
/// from its own counters, and the dead main thread's last ones (kept under
/// `--threads` until the loader has read them) stay its own. Before, the
/// thread's first switch-out after the exec was settled against the main
/// thread's entry (`--threads`: +0.5 s on a main thread that had burned
/// 0.5 s) or, without one, its stint was unknown (0.5 to 1.1 ms lost).
#[inline(always)]
fn ids_exchanged(old: u32, new: u32) {
    let exec_ing = THREADS.get_ptr_mut(old);
    let main = THREADS.get_ptr_mut(new);
    match (exec_ing, main) {
        // SAFETY: two distinct entries (distinct keys) of the map.
        (Some(e), Some(m)) => unsafe { core::ptr::swap_nonoverlapping(e, m, 1) },
        (Some(e), None) => {
            // SAFETY: a map value pointer from a successful lookup.
            if THREADS.insert(new, unsafe { &*e }, 0).is_err() {
                bump(stat::THREAD_INSERT_FAILED);
            }
            let _ = THREADS.remove(old);
        }
        (None, Some(m)) => {
            // SAFETY: a map value pointer from a successful lookup.
            if THREADS.insert(old, unsafe { &*m }, 0).is_err() {
                bump(stat::THREAD_INSERT_FAILED);
            }
            let _ = THREADS.remove(new);
        }
        (None, None) => {}
    }
    // The dead main thread never runs again.
    set_mark(old, 0);
    set_mark(new, exec_ing.is_some() as u8);
    if let Some(s) = slot() {
        // SAFETY: this CPU's slot; tracepoints run with preemption off and
        // the flush (an IPI) cannot interrupt a program.
        let s = unsafe { &mut *s };
        if s.holds(old) {
            s.tid = new;
        }
    }
}

/// Thread `tid` of process `tgid`, kernel task `task` (which may be running
/// now, here or on another CPU), counts from this instant: its baselines
/// are its figures now.
#[inline(always)]
pub fn adopt(task: u64, tid: u32, tgid: u32) {
    // One read after the other, each checked at once: no value of a failed
    // read is carried past the next helper call (the verifier refuses a
    // register the helper clobbered).
    let Some(sum) = read_field::<u64>(task, config().task_sum_exec_runtime) else {
        bump(stat::THREAD_INSERT_FAILED);
        return;
    };
    let Some((delay, pcount)) = sched_info(task) else {
        bump(stat::THREAD_INSERT_FAILED);
        return;
    };
    let Some((utime_ns, stime_ns)) = ticks(task) else {
        bump(stat::THREAD_INSERT_FAILED);
        return;
    };
    let Some((min_flt, maj_flt)) = faults(task) else {
        bump(stat::THREAD_INSERT_FAILED);
        return;
    };
    let made = insert_thread(tid, |t| {
        t.tgid = tgid;
        t.task = task;
        t.flags = THREAD_SUM_VALID;
        t.sum_exec_ns = sum;
        t.run_delay_ns = delay;
        t.pcount = pcount;
        t.utime_ns = utime_ns;
        t.stime_ns = stime_ns;
        t.min_flt = min_flt;
        t.maj_flt = maj_flt;
    });
    if made {
        set_mark(tid, 1);
    } else {
        bump(stat::THREAD_INSERT_FAILED);
    }
    if let Some(s) = slot() {
        // SAFETY: this CPU's slot; tracepoints run with preemption off and
        // the flush (an IPI) cannot interrupt a program.
        let s = unsafe { &mut *s };
        // Not marked pending here (`claim` would not fit the cgroup
        // program's stack): the loader flushes every CPU at its next read
        // after a match or a join, and the flush brings a CPU left behind
        // into the closing epoch first.
        if s.holds(tid) {
            // SAFETY: helper without arguments.
            s.start_ns = unsafe { bpf_ktime_get_ns() };
            s.start_lost_ns = crate::maps::rq_lost(task);
            s.credited_ns = 0;
            s.tracked_tgid = tgid;
        }
    }
}

#[inline(always)]
fn add_thread(task: u64, tid: u32, tgid: u32) {
    // A new task's sum_exec_runtime, utime and stime start at 0 (copy_process
    // clears them); its sched_info is read rather than assumed.
    let Some((delay, pcount)) = sched_info(task) else {
        bump(stat::THREAD_INSERT_FAILED);
        return;
    };
    // Overwrites: an entry under this new task's id is either stale (a
    // thread that had the id before) or one the loader seeded from /proc a
    // moment ago, which knows less.
    let made = insert_thread(tid, |t| {
        t.tgid = tgid;
        t.task = task;
        t.flags = THREAD_SUM_VALID;
        t.run_delay_ns = delay;
        t.pcount = pcount;
    });
    if made {
        set_mark(tid, 1);
    } else {
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
    // The thread's THREADS entry stays until its last switch-out, which
    // settles its final stint.
    let cfg = config();
    let task: u64 = ctx.arg(0);
    // do_exit() has just decremented signal->live: it is 0 when this is the
    // group's last thread (whichever thread that is: a leader that called
    // pthread_exit, or one killed by another thread's exec, is not).
    let group_dead = if cfg.exit_has_group_dead != 0 {
        ctx.arg::<u64>(1) & 0xff != 0
    } else {
        match read_field::<u64>(task, cfg.task_signal).and_then(|sig| read_field::<i32>(sig, cfg.signal_live)) {
            Some(live) => live == 0,
            None => return 0,
        }
    };
    // SAFETY: map value pointer from a successful lookup.
    let flags = unsafe { (*entry).flags };
    // Without the argument two threads exiting at once may both see 0:
    // the group's exit is told once.
    if group_dead && flags & TRACKED_EXITED == 0 {
        // SAFETY: as above.
        unsafe { (*entry).flags |= TRACKED_EXITED }
        let status = read_field::<u32>(task, cfg.task_exit_code).unwrap_or(0);
        emit(event::EXIT, tgid, parent_tgid(task), status);
    }
    0
}

/// `oom/mark_victim` (a classic tracepoint: its raw arguments changed
/// between kernels, its `pid` field did not), run when the OOM killer has
/// chosen its victim, any thread of the process it ends.
#[tracepoint]
pub fn oom_mark_victim(ctx: TracePointContext) -> u32 {
    // SAFETY: a plain read of the loader's static (alone: a constant).
    let at = unsafe { core::ptr::read_volatile(&config_ref().oom_victim_pid) };
    // SAFETY: offset from this kernel's tracefs format file.
    let Ok(victim) = (unsafe { ctx.read_at::<i32>(at as usize) }) else { return 0 };
    let victim = victim as u32;
    let tgid = if is_tracked(victim) {
        victim
    } else {
        // SAFETY: map value pointer from a successful lookup.
        match THREADS.get_ptr(victim) {
            Some(t) => unsafe { (*t).tgid },
            None => return 0,
        }
    };
    // SAFETY: map value pointer from a successful lookup.
    let Some(parent) = TRACKED.get_ptr(tgid).map(|t| unsafe { (*t).parent_tgid }) else { return 0 };
    emit(event::OOM_KILL, tgid, parent, 0);
    0
}
