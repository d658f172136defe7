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
//! goes to the other half of the counters (see `EpochCounters`). A CPU that
//! switches after the loader wrote the new epoch does the same itself at
//! that switch (`settle_at_switch`), so only CPUs that have not switched
//! since need the interrupt. At
//! switch-out the stint is settled: the thread's `sum_exec_runtime` gain
//! since its previous switch-out minus what flushes credited meanwhile.
//!
//! Run-queue wait is the kernel's own too (`sched_info.run_delay` and
//! `.pcount`, /proc/<pid>/schedstat's second and third fields): the kernel
//! adds a wait when it ends, at switch-in, so a thread's gain is credited
//! at its switch-out, or by the flush while it runs: in the window in which
//! the wait ended. No program runs at wake-up.
//!
//! The counts go to a per-CPU accumulator for one process (`RunSlot::acc`)
//! and reach the `COUNTERS` map when another process's thread is counted on
//! that CPU or the flush closes the epoch: a switch between two threads of
//! one process looks up the thread map only, and reads task fields with
//! direct loads (a BTF tracepoint) rather than helper calls.

use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_ktime_get_ns},
    macros::{btf_tracepoint, raw_tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext},
};
use messer_common::{
    LOST_UNKNOWN, RunSlot, SLOT_VALID, THREAD_DEAD, THREAD_FAULTS_KNOWN, THREAD_SUM_VALID, THREAD_TICKS_KNOWN,
    THREAD_TICKS_VALID, THREAD_WAIT_KNOWN, THREAD_WAIT_VALID, ThreadCounts, ThreadState, stat,
};

use crate::maps::{
    BPF_NOEXIST, EPOCH, THREADS, bump, by_cgroup, claim, config, config_ref, counting, current_ids, faults, mark,
    note_waits, ran_ns, read_field, rq_clocks_typed, rq_lost, rq_lost_typed, sched_acc, sched_info, set_mark, slot,
    spill, task_field, task_offsets, ticks,
};

/// `TASK_DEAD` in `prev_state`: the task is switched out for the last time
/// (the value of include/linux/sched.h since Linux 4.14).
const TASK_DEAD: u32 = 0x80;

/// A thread's scheduler figures as the kernel keeps them.
#[derive(Default)]
struct Kernel {
    sum_exec_ns: u64,
    run_delay_ns: u64,
    pcount: u64,
    utime_ns: u64,
    stime_ns: u64,
    min_flt: u64,
    maj_flt: u64,
}

impl Kernel {
    /// The baselines a thread map entry holds.
    #[inline(always)]
    fn of(t: &ThreadState) -> Self {
        Kernel {
            sum_exec_ns: t.sum_exec_ns,
            run_delay_ns: t.run_delay_ns,
            pcount: t.pcount,
            utime_ns: t.utime_ns,
            stime_ns: t.stime_ns,
            min_flt: t.min_flt,
            maj_flt: t.maj_flt,
        }
    }

    /// A thread map entry with these baselines, all known.
    #[inline(always)]
    fn entry(&self, tgid: u32) -> ThreadState {
        let mut t = ThreadState::default();
        self.set_in(&mut t, tgid);
        t
    }

    /// Makes these the baselines of entry `t` (its counts stay).
    #[inline(always)]
    fn set_in(&self, t: &mut ThreadState, tgid: u32) {
        t.tgid = tgid;
        t.flags = THREAD_SUM_VALID;
        t.sum_exec_ns = self.sum_exec_ns;
        t.run_delay_ns = self.run_delay_ns;
        t.pcount = self.pcount;
        t.utime_ns = self.utime_ns;
        t.stime_ns = self.stime_ns;
        t.min_flt = self.min_flt;
        t.maj_flt = self.maj_flt;
    }
}

/// Is `--threads` on?
#[inline(always)]
fn threads_on() -> bool {
    // SAFETY: a plain read of the loader's static (alone: a constant).
    unsafe { core::ptr::read_volatile(&config_ref().threads) != 0 }
}

/// `into += what`.
#[inline(always)]
fn add_counts(into: &mut ThreadCounts, what: &ThreadCounts) {
    into.on_cpu_ns = into.on_cpu_ns.wrapping_add(what.on_cpu_ns);
    into.runq_wait_ns = into.runq_wait_ns.wrapping_add(what.runq_wait_ns);
    into.switches_voluntary += what.switches_voluntary;
    into.switches_involuntary += what.switches_involuntary;
    into.user_ns = into.user_ns.wrapping_add(what.user_ns);
    into.system_ns = into.system_ns.wrapping_add(what.system_ns);
}

/// BTF tracepoint (no perf buffer in between, so no event is dropped; task
/// fields are direct loads): `sched_switch(bool preempt, struct task_struct
/// *prev, struct task_struct *next, unsigned int prev_state)`.
#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    let preempt: u64 = ctx.arg(0);
    let prev_task: *const u8 = ctx.arg(1);
    let next_task: *const u8 = ctx.arg(2);
    let prev_state: u64 = ctx.arg(3);
    let off = task_offsets();
    let Some(slot) = slot() else { return 0 };
    // SAFETY: this CPU's slot; sched_switch and the flush both run with
    // interrupts off, so they cannot interleave on one CPU.
    let slot = unsafe { &mut *slot };
    let tid: u32 = task_field(prev_task, off.pid);
    let tgid: u32 = task_field(prev_task, off.tgid);
    // The slot says whether the thread it saw switched in is tracked (from
    // the thread map then, or from the flush, which checks the tracked set
    // and so catches a thread that became tracked while it ran); only for a
    // thread it did not see is the tracked set asked. Untracked switches
    // thus cost one map lookup (the next thread's).
    let tracked = if slot.holds(tid) { slot.tracked_tgid == tgid && tgid != 0 } else { counting(tgid) };
    if tid != 0 && tracked {
        // The kernel's own rule (nvcsw vs nivcsw): a switch is voluntary
        // when the task was not preempted and was going to sleep.
        let runnable = preempt & 0xff != 0 || prev_state as u32 == 0;
        let dead = prev_state as u32 & TASK_DEAD != 0;
        let (run_delay_ns, pcount) = if off.has_sched_info {
            (task_field(prev_task, off.run_delay), task_field(prev_task, off.pcount))
        } else {
            (0, 0)
        };
        let now = Kernel {
            sum_exec_ns: task_field(prev_task, off.sum_exec),
            run_delay_ns,
            pcount,
            utime_ns: task_field(prev_task, off.utime),
            stime_ns: task_field(prev_task, off.stime),
            min_flt: task_field(prev_task, off.min_flt),
            maj_flt: task_field(prev_task, off.maj_flt),
        };
        switch_out(slot, tid, tgid, &now, runnable, dead, prev_task);
    }
    let next: u32 = task_field(next_task, off.pid);
    if slot.pending != 0 {
        settle_at_switch(slot, next == 0);
    }
    slot.tid = next;
    slot.flags = SLOT_VALID;
    slot.credited_ns = 0;
    slot.tracked_tgid = 0;
    if next != 0 {
        // SAFETY: a byte of a map value, or a map value pointer from a
        // successful lookup.
        let next_tgid = match mark(next) {
            Some(m) if unsafe { *m } != 0 => task_field::<u32>(next_task, off.tgid),
            Some(_) => 0,
            None => THREADS.get_ptr(next).map_or(0, |t| unsafe { (*t).tgid }),
        };
        if next_tgid != 0 {
            claim(slot);
            slot.tracked_tgid = next_tgid;
            // The thread switched out blocked (not preempted, not runnable)
            // and was not the idle task: the scheduler updated its clock.
            let fresh = tid != 0 && preempt & 0xff == 0 && prev_state as u32 != 0;
            switched_in(slot, next_task, fresh);
        }
    }
    0
}

/// A tracked thread (`task`) is switched in: the instant its stint begins,
/// and the run queue's loss then. The scheduler updated the queue's clock
/// (`rq.clock`) at the start of this switch and charges the thread's
/// `sum_exec_runtime` from it: that clock, moved to CLOCK_MONOTONIC by this
/// CPU's offset between the two, is the start, a plain load instead of a
/// clock read (70 ns on a VM). The scheduler skips its update where a
/// wake-up asked for this switch (`rq_clock_skip_update`: a CPU leaving
/// idle, a woken thread preempting), so the clock is the wake-up's, which
/// is also where it starts charging the thread; but an offset measured then
/// would be too large by that gap (up to milliseconds where the hypervisor
/// ran another vCPU meanwhile: 1.6 % of a core in a 0.5 s window in a test).
/// The offset is therefore measured only at a switch whose previous thread
/// blocked (`fresh`: it called into the scheduler itself, which updated the
/// clock), twice per epoch, keeping the smaller; until then a switch-in
/// reads the clock. Within an epoch the two clocks drift apart by the NTP
/// frequency correction (ppm). A flush credits from this start; the
/// switch-out settles with `sum_exec_runtime`, so no error outlives the
/// stint.
#[inline(always)]
fn switched_in(slot: &mut RunSlot, task: *const u8, fresh: bool) {
    let Some((clock, task_clock)) = rq_clocks_typed(task) else {
        // SAFETY: helper without arguments.
        slot.start_ns = unsafe { bpf_ktime_get_ns() };
        slot.start_lost_ns = LOST_UNKNOWN;
        return;
    };
    slot.start_lost_ns = clock.wrapping_sub(task_clock);
    let known = slot.offset_epoch == slot.epoch && slot.offset_samples != 0;
    if known && (!fresh || slot.offset_samples >= OFFSET_SAMPLES) {
        slot.start_ns = clock.wrapping_add(slot.clock_offset_ns);
        return;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    slot.start_ns = now;
    if fresh {
        let offset = now.wrapping_sub(clock);
        if !known {
            slot.clock_offset_ns = offset;
            slot.offset_epoch = slot.epoch;
            slot.offset_samples = 1;
        } else {
            // The freshest clock gives the smallest offset.
            if (offset.wrapping_sub(slot.clock_offset_ns) as i64) < 0 {
                slot.clock_offset_ns = offset;
            }
            slot.offset_samples += 1;
        }
    }
}

/// Offsets measured per epoch and CPU (see `switched_in`).
const OFFSET_SAMPLES: u32 = 2;

/// Settles the stint of tracked thread `tid` that ends now: the gain of its
/// `sum_exec_runtime` since its previous switch-out, less what flushes
/// credited meanwhile, and the run-queue wait the kernel added since.
/// Keyed by thread, so it holds even when this CPU's slot did not see the
/// thread switched in.
#[inline(always)]
fn switch_out(slot: &mut RunSlot, tid: u32, tgid: u32, now: &Kernel, runnable: bool, dead: bool, task: *const u8) {
    let thread = THREADS.get_ptr_mut(tid);
    // The entry of another live thread: a main thread killed by another
    // thread's exec switching out for the last time under that thread's
    // old id, which the kernel gave it, before the exec's tracepoint moved
    // the entries (`ids_exchanged`). Its last stint is not known.
    // SAFETY: map value pointer from a successful lookup.
    if let Some(t) = thread
        && let (id, flags) = unsafe { ((*t).task, (*t).flags) }
        && id != 0
        && id != task as u64
        && flags & THREAD_DEAD == 0
    {
        bump(stat::STINT_UNKNOWN);
        return;
    }
    // An entry (and mark) left behind by a thread that is gone (one that
    // died while the loader seeded it, or the old id of a thread that
    // exec'd), its id now reused by a thread of another process: not ours.
    // SAFETY: map value pointer from a successful lookup.
    // A thread of a process moved out of the target cgroup (--cgroup) is
    // not ours from the move on either.
    let stale = match thread {
        Some(t) => (unsafe { (*t).tgid }) != tgid || (by_cgroup() && !counting(tgid)),
        None => !counting(tgid),
    };
    if stale {
        if thread.is_some() {
            let _ = THREADS.remove(tid);
        }
        set_mark(tid, 0);
        return;
    }
    // SAFETY: map value pointer from a successful lookup.
    let (flags, before) = thread.map_or((0, Kernel::default()), |t| unsafe { ((*t).flags, Kernel::of(&*t)) });
    let sum_known = flags & THREAD_SUM_VALID != 0;
    // `start_ns` and `credited_ns` describe this stint only if the slot
    // saw the thread switched in (or flushed) as tracked.
    let seen_in = slot.holds(tid) && slot.tracked_tgid == tgid;
    let credited = if seen_in { slot.credited_ns } else { 0 };
    let credit = if sum_known {
        Some(now.sum_exec_ns.wrapping_sub(before.sum_exec_ns).wrapping_sub(credited))
    } else if seen_in {
        // Not known to the kernel side before: the time it ran since its
        // switch-in (or the last flush), which we saw.
        // SAFETY: helper without arguments.
        let now_ns = unsafe { bpf_ktime_get_ns() };
        Some(ran_ns(slot.start_ns, slot.start_lost_ns, now_ns, rq_lost_typed(task)))
    } else {
        None
    };
    mark_used(slot);
    let epoch = slot.epoch;
    let a = sched_acc(slot, tgid);
    let mut mine = ThreadCounts::default();
    match credit {
        Some(ns) => {
            a.on_cpu_ns = a.on_cpu_ns.wrapping_add(ns);
            mine.on_cpu_ns = ns;
        }
        None => bump(stat::STINT_UNKNOWN),
    }
    // A thread seeded at the start has its wait known from then on: a wait
    // that began before the recording and ends in it counts whole in the
    // window it ends in, as the kernel adds it.
    if flags & THREAD_WAIT_KNOWN != 0 {
        let (delay, waits) =
            (now.run_delay_ns.wrapping_sub(before.run_delay_ns), now.pcount.wrapping_sub(before.pcount));
        a.runq_wait_ns = a.runq_wait_ns.wrapping_add(delay);
        a.runq_waits = a.runq_waits.wrapping_add(waits);
        note_waits(epoch, delay, waits);
        mine.runq_wait_ns = delay;
    }
    if flags & THREAD_TICKS_KNOWN != 0 {
        mine.user_ns = now.utime_ns.wrapping_sub(before.utime_ns);
        mine.system_ns = now.stime_ns.wrapping_sub(before.stime_ns);
        a.user_ns = a.user_ns.wrapping_add(mine.user_ns);
        a.system_ns = a.system_ns.wrapping_add(mine.system_ns);
    }
    if flags & THREAD_FAULTS_KNOWN != 0 {
        a.faults_minor = a.faults_minor.wrapping_add(now.min_flt.wrapping_sub(before.min_flt));
        a.faults_major = a.faults_major.wrapping_add(now.maj_flt.wrapping_sub(before.maj_flt));
    }
    if runnable {
        a.switches_involuntary += 1;
        mine.switches_involuntary = 1;
    } else {
        a.switches_voluntary += 1;
        mine.switches_voluntary = 1;
    }
    let own = threads_on();
    match thread {
        Some(t) => {
            // SAFETY: map value pointer from a successful lookup.
            let t = unsafe { &mut *t };
            if own {
                add_counts(&mut t.half[(epoch & 1) as usize], &mine);
                // Its name as of this switch-out (a thread may rename
                // itself): the loader reads no /proc file for it.
                // SAFETY: a plain read of the loader's static (alone: a constant).
                let at = unsafe { core::ptr::read_volatile(&config_ref().task_comm) };
                t.comm = task_field(task, at);
            }
            if t.task == 0 {
                // Seeded by the loader: known from its first switch-out.
                t.task = task as u64;
            }
            if !dead {
                now.set_in(t, tgid);
            } else if own {
                // The thread's last switch-out: kept until the loader has
                // read this epoch.
                t.flags |= THREAD_DEAD;
                t.dead_epoch = epoch;
                set_mark(tid, 0);
            } else {
                // Settled above, forgotten now.
                let _ = THREADS.remove(tid);
                set_mark(tid, 0);
            }
        }
        None if dead => {}
        None => {
            let mut e = now.entry(tgid);
            e.task = task as u64;
            if own {
                e.half[(epoch & 1) as usize] = mine;
            }
            if THREADS.insert(tid, e, BPF_NOEXIST).is_ok() {
                set_mark(tid, 1);
            } else {
                bump(stat::THREAD_INSERT_FAILED);
            }
        }
    }
}

/// A switch on a CPU with something pending (see `RunSlot::pending`),
/// after the thread switched out was settled: nothing of this CPU's epoch
/// runs uncredited at this instant, so the switch can do what the flush
/// would. If the loader has moved on to a new epoch, the CPU closes its
/// epoch here, as a flush at this instant would (its accumulator into the
/// map, then the new epoch, this instant its boundary): the loader
/// interrupts only the CPUs that have not switched since it announced the
/// epoch. A CPU going idle empties its accumulator into the map and has
/// nothing pending any more, so that no interrupt wakes it for the flush.
#[inline(always)]
fn settle_at_switch(slot: &mut RunSlot, to_idle: bool) {
    // SAFETY: map value pointer from a successful lookup.
    let loader = EPOCH.get_ptr(0).map_or(0, |g| unsafe { core::ptr::read_volatile(g) });
    let behind = loader > slot.epoch;
    if !behind && !to_idle {
        return;
    }
    spill(slot);
    // The counts are in the map before the slot says the epoch is closed
    // (the loader reads the slots, then the map; x86 keeps stores in order).
    // SAFETY: an empty asm block: a compiler barrier only.
    unsafe { core::arch::asm!("") };
    if behind {
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_ns() };
        mark_moved(slot, loader, now);
    }
    // SAFETY: a field of this CPU's slot; see above.
    unsafe { core::ptr::write_volatile(&raw mut slot.pending, 0) };
}

/// Moves the slot into `epoch` with its boundary at `now`.
#[inline(always)]
fn mark_moved(slot: &mut RunSlot, epoch: u64, now: u64) {
    slot.flushed_ns = now;
    // SAFETY: a field of this CPU's slot, written last (see above).
    unsafe { core::ptr::write_volatile(&raw mut slot.epoch, epoch) };
}

/// Notes that a tracked thread ran on this CPU in its current epoch.
#[inline(always)]
fn mark_used(slot: &mut RunSlot) {
    let e = slot.epoch;
    if e & 1 == 0 {
        slot.used_epoch[0] = e;
    } else {
        slot.used_epoch[1] = e;
    }
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
    let tracked = tid != 0 && counting(tgid);
    // Only a tracked thread's run is credited: an untracked one's CPU skips
    // the run queue's reads (its slot's mark is set anew at the next
    // switch-in).
    // SAFETY: helper without arguments.
    let lost = if tracked { rq_lost(unsafe { bpf_get_current_task() }) } else { LOST_UNKNOWN };
    // Whatever is counted here belongs to the closing epoch: `claim` must
    // not move the CPU on before the end of the flush. A CPU left out of
    // earlier flushes (nothing pending) joins the closing epoch first.
    slot.pending = 1;
    if slot.epoch.wrapping_add(1) < epoch {
        slot.epoch = epoch - 1;
    }
    if !slot.holds(tid) && slot.flags & SLOT_VALID != 0 {
        // Its last switch-in was not seen (rare: about once a minute on a
        // busy machine here).
        bump(stat::FLUSH_RESYNC);
    }
    if tracked && slot.holds(tid) && slot.tracked_tgid == tgid {
        // Not the wall time: under a hypervisor that steals time from this
        // CPU (10 % here under load) that ran ahead of the thread's
        // `sum_exec_runtime` until its switch-out took it back, a window's
        // figure too high and a later one too low, even negative.
        let piece = ran_ns(slot.start_ns, slot.start_lost_ns, now, lost);
        let a = sched_acc(slot, tgid);
        a.on_cpu_ns = a.on_cpu_ns.wrapping_add(piece);
        slot.credited_ns = slot.credited_ns.wrapping_add(piece);
        mark_used(slot);
        flush_thread(slot, tid, tgid, false, piece);
    } else {
        // First sight of this CPU, a missed switch-in, or a thread that
        // became tracked while it ran.
        slot.tid = tid;
        slot.flags = SLOT_VALID;
        slot.credited_ns = 0;
        if tracked {
            slot.tracked_tgid = tgid;
            flush_thread(slot, tid, tgid, true, 0);
        }
    }
    slot.tracked_tgid = if tracked { tgid } else { 0 };
    // Everything of the closing epoch into the map before the loader reads it.
    spill(slot);
    slot.start_ns = now;
    slot.start_lost_ns = lost;
    slot.epoch = epoch;
    slot.flushed_ns = now;
    // What stays pending: the tracked thread running on into the new epoch.
    slot.pending = u32::from(tracked);
    0
}

/// A flush finds tracked thread `tid` running: the run-queue wait the
/// kernel added since it was last credited (the wait that ended at its
/// switch-in) and the ticks charged to it since belong to the closing
/// epoch. With `resync` (the slot did not see it switched in) so does its
/// stint so far: the kernel's `sum_exec_runtime` has it up to the last
/// scheduler update (a tick at most ago), so that much is credited now and
/// the rest goes with the settlement into the next epoch. Without this the
/// whole stint moved to the next window. A thread seeded by the loader
/// gets its wait and tick baselines here if it had none.
#[inline(always)]
fn flush_thread(slot: &mut RunSlot, tid: u32, tgid: u32, resync: bool, credited: u64) {
    let Some(t) = THREADS.get_ptr_mut(tid) else { return };
    // SAFETY: map value pointer from a successful lookup.
    let t = unsafe { &mut *t };
    // SAFETY: helper without arguments.
    let task = unsafe { bpf_get_current_task() };
    let (Some(sum), Some((delay, pcount)), Some((utime, stime)), Some((min_flt, maj_flt))) =
        (read_field::<u64>(task, config().task_sum_exec_runtime), sched_info(task), ticks(task), faults(task))
    else {
        return;
    };
    let resynced = resync && t.flags & THREAD_SUM_VALID != 0;
    let piece = sum.wrapping_sub(t.sum_exec_ns);
    let epoch = slot.epoch;
    let a = sched_acc(slot, tgid);
    let mut mine = ThreadCounts { on_cpu_ns: credited, ..ThreadCounts::default() };
    if t.flags & THREAD_WAIT_KNOWN != 0 {
        let (d, waits) = (delay.wrapping_sub(t.run_delay_ns), pcount.wrapping_sub(t.pcount));
        a.runq_wait_ns = a.runq_wait_ns.wrapping_add(d);
        a.runq_waits = a.runq_waits.wrapping_add(waits);
        note_waits(epoch, d, waits);
        mine.runq_wait_ns = d;
    }
    if t.flags & THREAD_TICKS_KNOWN != 0 {
        mine.user_ns = utime.wrapping_sub(t.utime_ns);
        mine.system_ns = stime.wrapping_sub(t.stime_ns);
        a.user_ns = a.user_ns.wrapping_add(mine.user_ns);
        a.system_ns = a.system_ns.wrapping_add(mine.system_ns);
    }
    if t.flags & THREAD_FAULTS_KNOWN != 0 {
        a.faults_minor = a.faults_minor.wrapping_add(min_flt.wrapping_sub(t.min_flt));
        a.faults_major = a.faults_major.wrapping_add(maj_flt.wrapping_sub(t.maj_flt));
    }
    if resynced {
        a.on_cpu_ns = a.on_cpu_ns.wrapping_add(piece);
        mine.on_cpu_ns = mine.on_cpu_ns.wrapping_add(piece);
    }
    if threads_on() {
        add_counts(&mut t.half[(epoch & 1) as usize], &mine);
    }
    t.run_delay_ns = delay;
    t.pcount = pcount;
    t.utime_ns = utime;
    t.stime_ns = stime;
    t.min_flt = min_flt;
    t.maj_flt = maj_flt;
    t.flags |= THREAD_WAIT_VALID | THREAD_TICKS_VALID;
    if resynced {
        slot.credited_ns = piece;
        mark_used(slot);
    }
}
