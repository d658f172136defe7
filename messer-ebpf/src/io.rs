//! Bytes and calls of the read/write and send/receive syscall families,
//! counted at syscall exit for tracked processes. Every call counts; bytes
//! are the sum of non-negative return values. One program per family, each
//! attached to the exit tracepoints of that family's syscalls. A
//! read/write-family call is counted as a socket's when the descriptor it
//! was given (the syscall's first argument, still in the task's saved
//! registers at exit) names a socket in the task's file table.

use aya_ebpf::{helpers, macros::tracepoint, programs::TracePointContext};
use messer_common::{S_IFMT, S_IFSOCK, io, stat};

use crate::maps::{bump, claim, config, counters, counting, current_ids, files_ref, read_field, slot, task_field};

/// Whether the descriptor the current syscall was given is a socket; None
/// when that could not be read (the descriptor closed meanwhile by another
/// thread, or a kernel without the offsets). current -> files -> fdt and
/// the saved registers are typed pointers (direct loads); the descriptor
/// array's entries and the file behind one are read with the probe helper.
#[inline(always)]
fn on_socket() -> Option<bool> {
    let f = files_ref();
    // Each offset read alone, so that the verifier sees a constant.
    // SAFETY: plain reads of the loader's static.
    let (classify, arg0_at, files_at, fdt_at, max_at, fd_at, inode_at, mode_at) = unsafe {
        (
            core::ptr::read_volatile(&f.classify_io),
            core::ptr::read_volatile(&f.regs_arg0),
            core::ptr::read_volatile(&f.task_files),
            core::ptr::read_volatile(&f.files_fdt),
            core::ptr::read_volatile(&f.fdt_max_fds),
            core::ptr::read_volatile(&f.fdt_fd),
            core::ptr::read_volatile(&f.file_inode),
            core::ptr::read_volatile(&f.inode_mode),
        )
    };
    if classify == 0 {
        return None;
    }
    // SAFETY: helpers without preconditions: the current task (a BTF
    // pointer), and its saved user registers (one too).
    let (task, regs) = unsafe {
        let task = helpers::bpf_get_current_task_btf();
        (task as *const u8, helpers::bpf_task_pt_regs(task) as *const u8)
    };
    let fd = task_field::<u64>(regs, arg0_at);
    let files = task_field::<*const u8>(task, files_at);
    if files.is_null() {
        return None;
    }
    let fdt = task_field::<*const u8>(files, fdt_at);
    if fdt.is_null() || fd >= u64::from(task_field::<u32>(fdt, max_at)) {
        return None;
    }
    let array = task_field::<u64>(fdt, fd_at);
    let file = read_field::<u64>(array.checked_add(fd.checked_mul(8)?)?, 0)?;
    if file == 0 {
        return None;
    }
    let mode = read_field::<u16>(read_field::<u64>(file, inode_at)?, mode_at)?;
    Some(mode & S_IFMT == S_IFSOCK)
}

#[inline(always)]
fn count(ctx: &TracePointContext, family: usize) -> u32 {
    let (tid, tgid) = current_ids();
    let Some(s) = slot() else { return 0 };
    // SAFETY: this CPU's slot.
    let (slot_tid, hint) = unsafe { ((*s).tid, (*s).tracked_tgid) };
    // The slot knows whether the running thread is tracked (from the thread
    // map at its switch-in): most syscalls of untracked tasks stop here
    // without a hash lookup. A thread missing from the thread map (map full)
    // has its IO missing too.
    let tracked = if slot_tid == tid { hint == tgid && hint != 0 } else { counting(tgid) };
    if !tracked {
        return 0;
    }
    // SAFETY: offset from this kernel's tracefs format file.
    let Ok(ret) = (unsafe { ctx.read_at::<i64>(config().sys_exit_ret as usize) }) else {
        return 0;
    };
    // A tracked thread whose switch-in this CPU did not see: the CPU may
    // have been left out of the last flushes (see `claim`).
    // SAFETY: this CPU's slot; a flush interrupting `claim` leaves it
    // pending in the flush's epoch, which `claim` then keeps.
    let epoch = unsafe {
        claim(&mut *s);
        (*s).epoch
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
    let family = match family {
        io::READ | io::WRITE => match on_socket() {
            Some(true) => family + (io::READ_SOCKET - io::READ),
            Some(false) => family,
            None => {
                bump(stat::IO_UNCLASSIFIED);
                family
            }
        },
        f => f,
    };
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
