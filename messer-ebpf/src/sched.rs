//! CPU time from context switches, plus the flush that credits time a thread
//! has been running since its last switch-in.
//!
//! Switch-out accounting alone credits a long-running thread's time to the
//! window in which it is finally switched out. The loader therefore runs
//! `messer_flush` on every CPU (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU,
//! an IPI) just before it reads the counters: the thread interrupted there is
//! credited up to that instant and its slot restarts from it.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

use crate::maps::{RUNNING, config, credit_cpu, is_tracked};

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    // SAFETY: the offset comes from this kernel's tracefs format file.
    let Ok(next) = (unsafe { ctx.read_at::<u32>(config().switch_next_pid as usize) }) else {
        return 0;
    };
    // `current` is still the task being switched out.
    switch_point(next, true);
    0
}

/// Not attached anywhere: run on one CPU by the loader through
/// BPF_PROG_TEST_RUN. In that context `current` is the interrupted task.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn messer_flush(_ctx: RawTracePointContext) -> i32 {
    let tid = bpf_get_current_pid_tgid() as u32;
    switch_point(tid, false);
    0
}

/// Credits the current task's uncredited run time to its process if tracked,
/// then starts a new uncredited stretch for `next` (the same task for a flush).
#[inline(always)]
fn switch_point(next: u32, is_switch: bool) {
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;
    let Some(slot) = RUNNING.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's slot; both callers run with interrupts off.
    let slot = unsafe { &mut *slot };
    if slot.valid != 0 && slot.tid == tid && tid != 0 && is_tracked(tgid) {
        credit_cpu(tgid, now.wrapping_sub(slot.start_ns));
    }
    if is_switch || slot.valid == 0 || slot.tid == tid {
        slot.tid = next;
        slot.start_ns = now;
        slot.valid = 1;
    }
}
