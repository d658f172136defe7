//! The census: two BPF iterators the loader reads once per sample, each
//! exact at that instant. Sockets: the kernel's `task_file` iterator over
//! the open files of every process (a file table shared by threads is
//! visited once) reports, for each descriptor of a tracked process naming a
//! TCP or UDP socket over IPv4 or IPv6, the socket's inode, protocol and
//! state: a cost per open file of the machine instead of a readlink per
//! descriptor and a /proc/net table parse. Threads: the `task` iterator
//! reports the state words of every thread of a tracked process. Memory:
//! the same iterator, run by a program of its own, reports each tracked
//! process's high-water mark and memory counters from its leader's mm
//! (what /proc/<pid>/status prints in full for two of its lines).

use core::ffi::c_void;

use aya_ebpf::helpers;
use messer_common::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, MemoryRecord, SocketRecord, ThreadRecord};

use crate::maps::{config_ref, counting, files_ref, task_field};

/// The kernel's `struct bpf_iter__task_file`: pointers are 8 bytes each.
#[repr(C)]
struct TaskFileCtx {
    meta: *const IterMeta,
    task: *const u8,
    fd: u32,
    file: *const u8,
}

/// The kernel's `struct bpf_iter_meta` (its first member).
#[repr(C)]
struct IterMeta {
    seq: *mut c_void,
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn messer_sockets(ctx: *mut c_void) -> u32 {
    let _ = census(ctx as *const TaskFileCtx);
    0
}

#[inline(always)]
fn census(ctx: *const TaskFileCtx) -> Option<()> {
    // SAFETY: the iterator's context, read at the kernel's layout (the
    // verifier checks each load against it).
    let (meta, task, file) = unsafe {
        (
            core::ptr::read_volatile(&(*ctx).meta),
            core::ptr::read_volatile(&(*ctx).task),
            core::ptr::read_volatile(&(*ctx).file),
        )
    };
    // The end of the iteration passes no task and no file.
    if task.is_null() || file.is_null() || meta.is_null() {
        return None;
    }
    // Each offset read alone, so that the verifier sees a constant.
    // SAFETY: plain reads of the loader's static.
    let tgid_at = unsafe { core::ptr::read_volatile(&config_ref().task_tgid) };
    let tgid = task_field::<u32>(task, tgid_at);
    if !counting(tgid) {
        return None;
    }
    // SAFETY: the helper returns the file's socket, or null if it is none.
    let sock = unsafe { helpers::bpf_sock_from_file(file as *mut _) } as *const u8;
    if sock.is_null() {
        return None;
    }
    let f = files_ref();
    // SAFETY: plain reads of the loader's static (see above).
    let (sk_at, family_at, protocol_at, state_at, inode_at, ino_at) = unsafe {
        (
            core::ptr::read_volatile(&f.socket_sk),
            core::ptr::read_volatile(&f.sk_family),
            core::ptr::read_volatile(&f.sk_protocol),
            core::ptr::read_volatile(&f.sk_state),
            core::ptr::read_volatile(&f.file_inode),
            core::ptr::read_volatile(&f.inode_ino),
        )
    };
    let sk = task_field::<*const u8>(sock, sk_at);
    if sk.is_null() {
        return None;
    }
    let family = task_field::<u16>(sk, family_at);
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    let protocol = task_field::<u16>(sk, protocol_at);
    if protocol != IPPROTO_TCP && protocol != IPPROTO_UDP {
        return None;
    }
    let inode = task_field::<*const u8>(file, inode_at);
    let rec = SocketRecord {
        ino: task_field::<u64>(inode, ino_at),
        tgid,
        protocol,
        state: u16::from(task_field::<u8>(sk, state_at)),
    };
    // SAFETY: the iterator's seq_file (from its meta) and a record on the
    // stack; a full buffer makes the kernel show this file again next read.
    unsafe {
        let seq = core::ptr::read_volatile(&(*meta).seq);
        helpers::bpf_seq_write(seq.cast(), (&rec as *const SocketRecord).cast(), size_of::<SocketRecord>() as u32);
    }
    Some(())
}

/// The kernel's `struct bpf_iter__task`.
#[repr(C)]
struct TaskCtx {
    meta: *const IterMeta,
    task: *const u8,
}

/// The thread-state census: every thread (task) of the machine is visited
/// once; for each of a tracked process its raw state words are reported.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn messer_thread_states(ctx: *mut c_void) -> u32 {
    let ctx = ctx as *const TaskCtx;
    // SAFETY: the iterator's context (see `census`).
    let (meta, task) = unsafe { (core::ptr::read_volatile(&(*ctx).meta), core::ptr::read_volatile(&(*ctx).task)) };
    if task.is_null() || meta.is_null() {
        return 0;
    }
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (tgid_at, state_at, exit_at) = unsafe {
        (
            core::ptr::read_volatile(&config_ref().task_tgid),
            core::ptr::read_volatile(&files_ref().task_state),
            core::ptr::read_volatile(&files_ref().task_exit_state),
        )
    };
    let tgid = task_field::<u32>(task, tgid_at);
    if !counting(tgid) {
        return 0;
    }
    let rec = ThreadRecord {
        tgid,
        state: task_field::<u32>(task, state_at),
        exit_state: task_field::<u32>(task, exit_at),
        _pad: 0,
    };
    // SAFETY: as in `census`.
    unsafe {
        let seq = core::ptr::read_volatile(&(*meta).seq);
        helpers::bpf_seq_write(seq.cast(), (&rec as *const ThreadRecord).cast(), size_of::<ThreadRecord>() as u32);
    }
    0
}

/// The memory iterator: every task of the machine is visited once; for
/// each tracked thread group leader that has an address space its mm's
/// high-water mark and counters are reported.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn messer_memory(ctx: *mut c_void) -> u32 {
    let ctx = ctx as *const TaskCtx;
    // SAFETY: the iterator's context (see `census`).
    let (meta, task) = unsafe { (core::ptr::read_volatile(&(*ctx).meta), core::ptr::read_volatile(&(*ctx).task)) };
    if task.is_null() || meta.is_null() {
        return 0;
    }
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (tgid_at, pid_at, mm_at) = unsafe {
        (
            core::ptr::read_volatile(&config_ref().task_tgid),
            core::ptr::read_volatile(&config_ref().task_pid),
            core::ptr::read_volatile(&files_ref().task_mm),
        )
    };
    let tgid = task_field::<u32>(task, tgid_at);
    if task_field::<u32>(task, pid_at) != tgid || !counting(tgid) {
        return 0;
    }
    let mm = task_field::<*const u8>(task, mm_at);
    if mm.is_null() {
        return 0;
    }
    // SAFETY: as above.
    let (hiwater_at, c0, stride) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().mm_hiwater_rss),
            core::ptr::read_volatile(&files_ref().mm_counter0),
            core::ptr::read_volatile(&files_ref().mm_counter_stride),
        )
    };
    let rec = MemoryRecord {
        tgid,
        _pad: 0,
        hiwater_rss: task_field::<u64>(mm, hiwater_at),
        counters: [
            task_field::<i64>(mm, c0),
            task_field::<i64>(mm, c0 + stride),
            task_field::<i64>(mm, c0 + 2 * stride),
            task_field::<i64>(mm, c0 + 3 * stride),
        ],
    };
    // SAFETY: as in `census`.
    unsafe {
        let seq = core::ptr::read_volatile(&(*meta).seq);
        helpers::bpf_seq_write(seq.cast(), (&rec as *const MemoryRecord).cast(), size_of::<MemoryRecord>() as u32);
    }
    0
}
