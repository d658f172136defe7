//! Bytes and calls of the read/write and send/receive syscall families,
//! counted at syscall exit for tracked processes. Every call counts; bytes
//! are the sum of non-negative return values. One program per family, each
//! attached to the exit tracepoints of that family's syscalls.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};
use messer_common::io;

use crate::maps::{config, counters, current_ids, is_tracked, slot};

#[inline(always)]
fn count(ctx: &TracePointContext, family: usize) -> u32 {
    let (tid, tgid) = current_ids();
    let Some(s) = slot() else { return 0 };
    // SAFETY: this CPU's slot; read only.
    let (slot_tid, hint, epoch) = unsafe { ((*s).tid, (*s).tracked_tgid, (*s).epoch) };
    // The slot knows whether the running thread is tracked (from the thread
    // map at its switch-in): most syscalls of untracked tasks stop here
    // without a hash lookup. A thread missing from the thread map (map full)
    // has its IO missing too.
    let tracked = if slot_tid == tid { hint == tgid && hint != 0 } else { is_tracked(tgid) };
    if !tracked {
        return 0;
    }
    // SAFETY: offset from this kernel's tracefs format file.
    let Ok(ret) = (unsafe { ctx.read_at::<i64>(config().sys_exit_ret as usize) }) else {
        return 0;
    };
    let Some(c) = counters(tgid, epoch) else {
        return 0;
    };
    // SAFETY: map value pointer from a successful lookup; per-CPU data and
    // syscall tracepoint programs run with preemption off, so the adds
    // cannot interleave with another program's on this CPU (the flush IPI
    // touches only on_cpu_ns). If a flush lands between reading the epoch
    // and the add, the call is counted in the previous half, which the
    // loader picks up one read later: late, never lost.
    let c = unsafe { &mut *c };
    if family < io::COUNT {
        c.io_calls[family] += 1;
        if ret > 0 {
            c.io_bytes[family] += ret as u64;
        }
    }
    0
}

#[tracepoint]
pub fn sys_exit_read_family(ctx: TracePointContext) -> u32 {
    count(&ctx, io::READ)
}

#[tracepoint]
pub fn sys_exit_write_family(ctx: TracePointContext) -> u32 {
    count(&ctx, io::WRITE)
}

#[tracepoint]
pub fn sys_exit_recv_family(ctx: TracePointContext) -> u32 {
    count(&ctx, io::RECV)
}

#[tracepoint]
pub fn sys_exit_send_family(ctx: TracePointContext) -> u32 {
    count(&ctx, io::SEND)
}
