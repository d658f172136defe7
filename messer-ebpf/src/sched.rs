//! CPU time, run-queue wait and context switches from the scheduler.
//!
//! On-CPU time follows the kernel's own accounting (`se.sum_exec_runtime`,
//! what /proc, getrusage and schedstat report): when a tracked thread is
//! switched out, the gain of its `sum_exec_runtime` over the stint is
//! credited. So that a window also gets the time of a thread that is still
//! running, the loader runs `messer_flush` on every CPU (BPF_PROG_TEST_RUN
//! with BPF_F_TEST_RUN_ON_CPU, an IPI) before it reads: the running thread is
//! credited the CLOCK_MONOTONIC time since its switch-in or last flush, and
//! the CPU moves to the next flush epoch, so that everything after the flush
//! goes to the other half of the counters (see `EpochCounters`). At
//! switch-out the stint is settled: the thread's `sum_exec_runtime` gain
//! since its previous switch-out minus what flushes credited meanwhile.
//!
//! Run-queue wait runs from the moment a thread becomes runnable (woken, or
//! preempted while runnable) to its next switch-in, and is credited then.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_ktime_get_ns},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use messer_common::{SLOT_VALID, THREAD_SUM_VALID, ThreadState, stat};

use crate::maps::{BPF_NOEXIST, THREADS, bump, config, counters, current_ids, is_tracked, read_field, slot};

/// `TASK_DEAD` in `prev_state`: the task is switched out for the last time
/// (the value of include/linux/sched.h since Linux 4.14).
const TASK_DEAD: u32 = 0x80;

/// The current task's `se.sum_exec_runtime`.
#[inline(always)]
fn current_sum_exec() -> Option<u64> {
    // SAFETY: helper without arguments.
    read_field(unsafe { bpf_get_current_task() }, config().task_sum_exec_runtime)
}

/// Raw tracepoint (no perf buffer in between, so no event is dropped):
/// `sched_switch(bool preempt, struct task_struct *prev, struct task_struct
/// *next, unsigned int prev_state)`.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn sched_switch(ctx: RawTracePointContext) -> i32 {
    let preempt: u64 = ctx.arg(0);
    let next_task: u64 = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    let Some(next) = read_field::<u32>(next_task, config().task_pid) else {
        return 0;
    };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(slot) = slot() else { return 0 };
    // SAFETY: this CPU's slot; sched_switch and the flush both run with
    // interrupts off, so they cannot interleave on one CPU.
    let slot = unsafe { &mut *slot };
    // `current` is still the task being switched out.
    let (tid, tgid) = current_ids();
    // The slot says whether the thread switched in was tracked; if it does
    // not know (or says no), ask the tracked set.
    let hinted = slot.holds(tid) && slot.tracked_tgid == tgid && tgid != 0;
    let mut prev_counters = None;
    if tid != 0 && (hinted || is_tracked(tgid)) {
        // The kernel's own rule (nvcsw vs nivcsw): a switch is voluntary
        // when the task was not preempted and was going to sleep.
        let runnable = preempt & 0xff != 0 || prev_state as u32 == 0;
        let dead = prev_state as u32 & TASK_DEAD != 0;
        prev_counters = switch_out(slot, tid, tgid, runnable, dead, now);
    }
    slot.flags = SLOT_VALID;
    slot.tracked_tgid = 0;
    if next != 0
        && let Some(t) = THREADS.get_ptr_mut(next)
    {
        // SAFETY: map value pointer from a successful lookup.
        let t = unsafe { &mut *t };
        slot.tracked_tgid = t.tgid;
        if t.runnable_since_ns != 0 {
            // Threads of one process often switch to each other.
            let c = match prev_counters {
                Some(c) if tgid == t.tgid => Some(c),
                _ => counters(t.tgid, slot.epoch),
            };
            if let Some(c) = c {
                // SAFETY: map value pointer; irqs are off.
                let c = unsafe { &mut *c };
                c.runq_wait_ns += now.saturating_sub(t.runnable_since_ns);
                c.runq_waits += 1;
            }
            t.runnable_since_ns = 0;
        }
    }
    slot.tid = next;
    slot.start_ns = now;
    slot.credited_ns = 0;
    0
}

/// Settles the stint of tracked thread `tid` that ends now: the gain of its
/// `sum_exec_runtime` since its previous switch-out, less what flushes
/// credited meanwhile. Keyed by thread, so it holds even when this CPU's
/// slot did not see the thread switched in. Returns the process's counters.
#[inline(always)]
fn switch_out(
    slot: &mut messer_common::RunSlot,
    tid: u32,
    tgid: u32,
    runnable: bool,
    dead: bool,
    now: u64,
) -> Option<*mut messer_common::Counters> {
    let sum_out = current_sum_exec();
    let thread = THREADS.get_ptr_mut(tid);
    // SAFETY: map value pointer from a successful lookup.
    let before = thread.and_then(|t| unsafe { ((*t).flags & THREAD_SUM_VALID != 0).then_some((*t).sum_exec_ns) });
    let seen_in = slot.holds(tid);
    let counters = counters(tgid, slot.epoch);
    if let Some(c) = counters {
        // SAFETY: map value pointer; irqs are off.
        let c = unsafe { &mut *c };
        let credited = if seen_in { slot.credited_ns } else { 0 };
        let credit = match (sum_out, before) {
            (Some(out), Some(before)) => Some(out.wrapping_sub(before).wrapping_sub(credited)),
            // Not known to the kernel side before: wall time since its
            // switch-in (or the last flush) if we saw that.
            _ if seen_in => Some(now.wrapping_sub(slot.start_ns)),
            _ => None,
        };
        match credit {
            Some(ns) => c.on_cpu_ns = c.on_cpu_ns.wrapping_add(ns),
            None => bump(stat::STINT_UNKNOWN),
        }
        mark_used(slot);
        if runnable {
            c.switches_involuntary += 1;
        } else {
            c.switches_voluntary += 1;
        }
    }
    let since = if runnable { now } else { 0 };
    let (sum, flags) = match sum_out {
        Some(s) => (s, THREAD_SUM_VALID),
        None => (0, 0),
    };
    match thread {
        // The thread's last switch-out: settled above, forgotten now.
        Some(_) if dead => {
            let _ = THREADS.remove(tid);
        }
        Some(t) => {
            // SAFETY: map value pointer from a successful lookup.
            let t = unsafe { &mut *t };
            t.runnable_since_ns = since;
            t.sum_exec_ns = sum;
            t.flags = flags;
        }
        None if dead => {}
        None => {
            let t = ThreadState { tgid, flags, runnable_since_ns: since, sum_exec_ns: sum };
            if THREADS.insert(tid, t, BPF_NOEXIST).is_err() {
                bump(stat::THREAD_INSERT_FAILED);
            }
        }
    }
    counters
}

/// Notes that a tracked thread ran on this CPU in its current epoch.
#[inline(always)]
fn mark_used(slot: &mut messer_common::RunSlot) {
    let e = slot.epoch;
    if e & 1 == 0 {
        slot.used_epoch[0] = e;
    } else {
        slot.used_epoch[1] = e;
    }
}

/// sched_wakeup and sched_wakeup_new (`struct task_struct *p`): a tracked
/// thread became runnable.
#[raw_tracepoint(tracepoint = "sched_wakeup")]
pub fn sched_wakeup(ctx: RawTracePointContext) -> i32 {
    let task: u64 = ctx.arg(0);
    let Some(pid) = read_field::<u32>(task, config().task_pid) else {
        return 0;
    };
    if let Some(t) = THREADS.get_ptr_mut(pid) {
        // SAFETY: map value pointer from a successful lookup.
        let t = unsafe { &mut *t };
        if t.runnable_since_ns == 0 {
            // SAFETY: helper without arguments.
            t.runnable_since_ns = unsafe { bpf_ktime_get_ns() };
        }
    }
    0
}

/// Not attached anywhere: run on one CPU by the loader through
/// BPF_PROG_TEST_RUN, with the new epoch as argument 0. In that context
/// `current` is the interrupted task.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn messer_flush(ctx: RawTracePointContext) -> i32 {
    let epoch: u64 = ctx.arg(0);
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(slot) = slot() else { return 0 };
    // SAFETY: this CPU's slot; we run in an IPI with interrupts off.
    let slot = unsafe { &mut *slot };
    let (tid, tgid) = current_ids();
    let tracked = tid != 0 && is_tracked(tgid);
    slot.tracked_tgid = if tracked { tgid } else { 0 };
    if slot.holds(tid) {
        if tracked && let Some(c) = counters(tgid, slot.epoch) {
            let piece = now.wrapping_sub(slot.start_ns);
            // SAFETY: map value pointer; interrupts are off.
            unsafe { (*c).on_cpu_ns = (*c).on_cpu_ns.wrapping_add(piece) };
            slot.credited_ns = slot.credited_ns.wrapping_add(piece);
            mark_used(slot);
        }
    } else {
        if slot.flags & SLOT_VALID != 0 {
            bump(stat::FLUSH_RESYNC);
        }
        // First sight of this CPU, or its last switch-in was not seen (rare:
        // about once a minute on a busy machine here).
        slot.tid = tid;
        slot.flags = SLOT_VALID;
        slot.credited_ns = 0;
        if tracked {
            resync_credit(slot, tid, tgid);
        }
    }
    slot.start_ns = now;
    slot.epoch = epoch;
    slot.flushed_ns = now;
    0
}

/// A tracked thread found running by a flush although this CPU's slot did
/// not see it switched in: the part of its stint up to the flush belongs to
/// the closing epoch. The kernel's `sum_exec_runtime` has it up to the last
/// scheduler update (a tick at most ago), so that much is credited now and
/// the rest goes with the settlement into the next epoch. Without this the
/// whole stint moved to the next window.
#[inline(always)]
fn resync_credit(slot: &mut messer_common::RunSlot, tid: u32, tgid: u32) {
    let Some(t) = THREADS.get_ptr(tid) else { return };
    // SAFETY: map value pointer from a successful lookup.
    let (flags, before) = unsafe { ((*t).flags, (*t).sum_exec_ns) };
    if flags & THREAD_SUM_VALID == 0 {
        return;
    }
    let (Some(sum), Some(c)) = (current_sum_exec(), counters(tgid, slot.epoch)) else { return };
    let piece = sum.wrapping_sub(before);
    // SAFETY: map value pointer; interrupts are off.
    unsafe { (*c).on_cpu_ns = (*c).on_cpu_ns.wrapping_add(piece) };
    slot.credited_ns = piece;
    mark_used(slot);
}
