//! The census: BPF iterators the loader reads once per sample, each exact
//! at that instant. One over every task (`messer_census`) reports the state
//! words of every thread of a tracked process and, from each tracked
//! process's file table, each descriptor naming a TCP or UDP socket over
//! IPv4 or IPv6 with the socket's inode, protocol and state: a cost per
//! task of the machine and per descriptor of the tree, instead of a
//! readlink per descriptor and a /proc/net table parse. Another, run by a
//! program of its own (`messer_processes`), reports each tracked process's
//! stat, IO sums, descriptor count, and high-water mark and memory counters
//! from its leader's mm (what /proc/<pid>/status prints in full for two of
//! its lines).

use core::ffi::c_void;

use aya_ebpf::{helpers, macros::raw_tracepoint, programs::RawTracePointContext};
use messer_common::{
    AF_INET, AF_INET6, CENSUS_INCOMPLETE, CENSUS_SOCKET, CENSUS_SOCKETS_MAX, CENSUS_THREAD, CensusRecord, CpuOffset,
    FD_WORDS_MAX, IPPROTO_TCP, IPPROTO_UDP, PERCPU_MAX_CPUS, ProcessRecord, S_IFMT, S_IFSOCK, SUM_THREADS,
};

use crate::maps::{
    CENSUS_FOUND, CPU_OFFSETS, PROCESS_SCRATCH, config_ref, counting, files_ref, read_or_zero, task_field, task_rq,
    zero,
};

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

/// The kernel's `struct bpf_iter__task`.
#[repr(C)]
struct TaskCtx {
    meta: *const IterMeta,
    task: *const u8,
}

/// The sockets where a tracked process has more than `CENSUS_SOCKETS_MAX`
/// (more than `messer_census` can report for one task): the kernel's
/// `task_file` iterator over the open files of every process (a file table
/// shared by threads is visited once, a reference taken on each file)
/// reports each descriptor of a tracked process naming a TCP or UDP socket
/// over IPv4 or IPv6, one record per file, so without a limit per process.
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task_file")]
pub fn messer_sockets(ctx: *mut c_void) -> u32 {
    let _ = file_census(ctx as *const TaskFileCtx);
    0
}

#[inline(always)]
fn file_census(ctx: *const TaskFileCtx) -> Option<()> {
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
    let rec = CensusRecord {
        kind: CENSUS_SOCKET,
        tgid,
        state: u32::from(task_field::<u8>(sk, state_at)),
        detail: u32::from(protocol),
        ino: task_field::<u64>(inode, ino_at),
    };
    // SAFETY: the iterator's seq_file (from its meta) and a record on the
    // stack; a full buffer makes the kernel show this file again next read.
    unsafe {
        let seq = core::ptr::read_volatile(&(*meta).seq);
        helpers::bpf_seq_write(seq.cast(), (&rec as *const CensusRecord).cast(), size_of::<CensusRecord>() as u32);
    }
    Some(())
}

/// The census: every task of the machine is visited once. For each thread
/// of a tracked process its raw state words are reported, and its file
/// table is walked (the leader's, and a thread's own where it does not
/// share the leader's, as the kernel's `task_file` iterator visits them):
/// each descriptor naming a TCP or UDP socket over IPv4 or IPv6 is
/// reported with the socket's inode, protocol and state. Only tracked
/// processes' descriptors are looked at, each with a few probe reads
/// (`task_file` would take a reference on every open file of the machine).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn messer_census(ctx: *mut c_void) -> u32 {
    let ctx = ctx as *const TaskCtx;
    // SAFETY: the iterator's context, read at the kernel's layout (the
    // verifier checks each load against it).
    let (meta, task) = unsafe { (core::ptr::read_volatile(&(*ctx).meta), core::ptr::read_volatile(&(*ctx).task)) };
    // The end of the iteration passes no task.
    if task.is_null() || meta.is_null() {
        return 0;
    }
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (tgid_at, pid_at, state_at, exit_at) = unsafe {
        (
            core::ptr::read_volatile(&config_ref().task_tgid),
            core::ptr::read_volatile(&config_ref().task_pid),
            core::ptr::read_volatile(&files_ref().task_state),
            core::ptr::read_volatile(&files_ref().task_exit_state),
        )
    };
    let tgid = task_field::<u32>(task, tgid_at);
    if !counting(tgid) {
        return 0;
    }
    let rec = CensusRecord {
        kind: CENSUS_THREAD,
        tgid,
        state: task_field::<u32>(task, state_at),
        detail: task_field::<u32>(task, exit_at),
        ino: 0,
    };
    // SAFETY: the iterator's seq_file (from its meta) and a record on the
    // stack; a full buffer makes the kernel show this task again next read.
    let seq = unsafe { core::ptr::read_volatile(&(*meta).seq) };
    // SAFETY: as above.
    unsafe {
        helpers::bpf_seq_write(seq.cast(), (&rec as *const CensusRecord).cast(), size_of::<CensusRecord>() as u32);
    }
    let tid = task_field::<u32>(task, pid_at);
    if !sockets(task as u64, tid == tgid, tgid, seq) {
        let rec = CensusRecord { kind: CENSUS_INCOMPLETE, tgid, state: 0, detail: 0, ino: 0 };
        // SAFETY: as above.
        unsafe {
            helpers::bpf_seq_write(seq.cast(), (&rec as *const CensusRecord).cast(), size_of::<CensusRecord>() as u32);
        }
    }
    0
}

/// Reports the sockets in the file table of tracked task `task` (a thread
/// group leader if `leader`), unless it shares its leader's. False if the
/// walk did not finish: more than `CENSUS_SOCKETS_MAX` sockets (what one
/// task shows must fit the iterator's buffer of 8 pages), a table longer
/// than `FD_WORDS_MAX` words, or a failed read of the table.
#[inline(always)]
fn sockets(task: u64, leader: bool, tgid: u32, seq: *mut c_void) -> bool {
    let f = files_ref();
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (files_at, leader_at, fdt_at, max_at, open_at, fd_at) = unsafe {
        (
            core::ptr::read_volatile(&f.task_files),
            core::ptr::read_volatile(&f.task_group_leader),
            core::ptr::read_volatile(&f.files_fdt),
            core::ptr::read_volatile(&f.fdt_max_fds),
            core::ptr::read_volatile(&f.fdt_open_fds),
            core::ptr::read_volatile(&f.fdt_fd),
        )
    };
    let mut ok = true;
    let files = get::<u64>(&mut ok, task, files_at);
    if !ok {
        return false;
    }
    // An exiting task has no file table left.
    if files == 0 {
        return true;
    }
    if !leader {
        let head = get::<u64>(&mut ok, task, leader_at);
        let shared = get::<u64>(&mut ok, head, files_at) == files;
        if !ok || shared {
            return ok;
        }
    }
    let fdt = get::<u64>(&mut ok, files, fdt_at);
    if !ok || fdt == 0 {
        return false;
    }
    let max_fds = get::<u32>(&mut ok, fdt, max_at);
    let open = get::<u64>(&mut ok, fdt, open_at);
    let array = get::<u64>(&mut ok, fdt, fd_at);
    let words = max_fds.div_ceil(64);
    if !ok || open == 0 || array == 0 || words > FD_WORDS_MAX {
        return false;
    }
    let Some(found) = CENSUS_FOUND.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's value; iterator programs run with migration off.
    unsafe { *found = 0 };
    let mut walk =
        SocketWalk { seq, open, array, bits: u64::from(max_fds), tgid: u64::from(tgid), done: 1, word: 0, first: 0 };
    // SAFETY: bpf_loop calls `socket_word` with `walk`, a local that
    // outlives the call.
    unsafe {
        helpers::generated::bpf_loop(words, socket_word as *mut c_void, (&mut walk as *mut SocketWalk).cast(), 0);
    }
    walk.done != 0
}

/// The first `bits` bits of a word (all 64 from 64 on).
#[inline(always)]
fn low_bits(bits: u64) -> u64 {
    if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
}

/// Where a walk of a file table for sockets is (`sockets`): the iterator's
/// seq_file, the `open_fds` bitmap, the descriptor array and its length
/// in bits, the process (the sockets reported so far: `CENSUS_FOUND`);
/// `done` 0 once the walk stopped short; the bits of the word at
/// descriptor `first` still to look at.
#[repr(C)]
struct SocketWalk {
    seq: *mut c_void,
    open: u64,
    array: u64,
    bits: u64,
    tgid: u64,
    done: u64,
    word: u64,
    first: u64,
}

/// One word of a descriptor bitmap, called by bpf_loop: its set bits are
/// walked by a loop of their own (`socket_bit`); 1 (stop) at the table's
/// end, and, `done` cleared, on a failed read or where `socket_bit`
/// stopped short.
#[inline(never)]
extern "C" fn socket_word(index: u32, walk: *mut c_void) -> i64 {
    // SAFETY: the `SocketWalk` that `sockets` passed.
    let w = unsafe { &mut *(walk as *mut SocketWalk) };
    let first = u64::from(index) * 64;
    if first >= w.bits {
        return 1;
    }
    let mut ok = true;
    let word = get::<u64>(&mut ok, w.open, index.wrapping_mul(8)) & low_bits(w.bits - first);
    if !ok {
        w.done = 0;
        return 1;
    }
    if word == 0 {
        return 0;
    }
    (w.word, w.first) = (word, first);
    // A loop of its own rather than a bounded one here, which the verifier
    // would follow through all 64 steps (doubling messer's start-up).
    // SAFETY: bpf_loop calls `socket_bit` with the walk `sockets` passed,
    // which outlives the call.
    unsafe {
        helpers::generated::bpf_loop(64, socket_bit as *mut c_void, walk, 0);
    }
    i64::from(w.done == 0)
}

/// One set bit of the walk's word, called by bpf_loop: lowest first, the
/// descriptor looked at (`socket_at`) and its bit cleared; 1 (stop) when
/// none is left, and, `done` cleared, where `socket_at` stops short.
#[inline(never)]
extern "C" fn socket_bit(_index: u32, walk: *mut c_void) -> i64 {
    // SAFETY: the `SocketWalk` that `sockets` passed.
    let w = unsafe { &mut *(walk as *mut SocketWalk) };
    let word = w.word;
    if word == 0 {
        return 1;
    }
    let low = word & word.wrapping_neg();
    w.word = word ^ low;
    if !socket_at(w, w.first + u64::from((low - 1).count_ones())) {
        w.done = 0;
        return 1;
    }
    0
}

/// Reports descriptor `fd` of the walk's table if it names a TCP or UDP
/// socket over IPv4 or IPv6: a file whose inode is a socket's (`S_IFSOCK`)
/// and whose private data is the `struct socket` (an `O_PATH` descriptor
/// of a socket's path has none; a file closed meanwhile is passed over).
/// False where the walk must stop short: its descriptor slot could not be
/// read, or it would be the process's socket past `CENSUS_SOCKETS_MAX`.
#[inline(always)]
fn socket_at(w: &SocketWalk, fd: u64) -> bool {
    let f = files_ref();
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (inode_at, mode_at, private_at, sk_at, family_at, protocol_at, state_at, ino_at) = unsafe {
        (
            core::ptr::read_volatile(&f.file_inode),
            core::ptr::read_volatile(&f.inode_mode),
            core::ptr::read_volatile(&f.file_private),
            core::ptr::read_volatile(&f.socket_sk),
            core::ptr::read_volatile(&f.sk_family),
            core::ptr::read_volatile(&f.sk_protocol),
            core::ptr::read_volatile(&f.sk_state),
            core::ptr::read_volatile(&f.inode_ino),
        )
    };
    let mut ok = true;
    let file = get::<u64>(&mut ok, w.array, (fd * 8) as u32);
    if !ok {
        return false;
    }
    if file == 0 {
        return true;
    }
    let inode = get::<u64>(&mut ok, file, inode_at);
    if !ok || inode == 0 || get::<u16>(&mut ok, inode, mode_at) & S_IFMT != S_IFSOCK {
        return true;
    }
    let sock = get::<u64>(&mut ok, file, private_at);
    if !ok || sock == 0 {
        return true;
    }
    let sk = get::<u64>(&mut ok, sock, sk_at);
    if !ok || sk == 0 {
        return true;
    }
    let family = get::<u16>(&mut ok, sk, family_at);
    let protocol = get::<u16>(&mut ok, sk, protocol_at);
    let state = get::<u8>(&mut ok, sk, state_at);
    let ino = get::<u64>(&mut ok, inode, ino_at);
    if !ok || (family != AF_INET && family != AF_INET6) || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP) {
        return true;
    }
    let tgid = w.tgid as u32;
    let Some(found) = CENSUS_FOUND.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's value (see `sockets`).
    let n = unsafe {
        *found += 1;
        *found
    };
    if n > u64::from(CENSUS_SOCKETS_MAX) {
        return false;
    }
    let rec = CensusRecord { kind: CENSUS_SOCKET, tgid, state: u32::from(state), detail: u32::from(protocol), ino };
    // SAFETY: the iterator's seq_file, kept in the walk, and a record on
    // the stack; a full buffer makes the kernel show this task again next
    // read.
    unsafe {
        helpers::bpf_seq_write(w.seq.cast(), (&rec as *const CensusRecord).cast(), size_of::<CensusRecord>() as u32);
    }
    true
}

/// How often a per-CPU sum is tried before the process is left to /proc.
const SUM_TRIES: u32 = 3;

/// The process iterator: every task of the machine is visited once; for
/// each tracked thread group leader it reports what its stat prints
/// (/proc/<pid>/task/<pid>/stat) and, from its address space, the mm's
/// high-water mark and counters (VmHWM and VmSwap of status). Every read
/// of the mm is a probe read into a defined local (6.1's verifier refuses
/// direct loads from `atomic_long_t`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "iter/task")]
pub fn messer_processes(ctx: *mut c_void) -> u32 {
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
    let Some(rec) = PROCESS_SCRATCH.get_ptr_mut(0) else { return 0 };
    // SAFETY: this CPU's scratch entry (see `PROCESS_SCRATCH`).
    let rec = unsafe { &mut *rec };
    zero(rec);
    rec.tgid = tgid;
    let mm = task_field::<*const u8>(task, mm_at) as u64;
    // Without an address space stat prints 0 for its sizes.
    let mm_read = mm == 0 || memory(mm, rec);
    // SAFETY: as above.
    let (nofile_on, signal_at, nofile_at) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().nofile),
            core::ptr::read_volatile(&config_ref().task_signal),
            core::ptr::read_volatile(&files_ref().signal_nofile),
        )
    };
    let signal = task_field::<*const u8>(task, signal_at) as u64;
    if nofile_on != 0 && signal != 0 {
        let (nofile, known) = read_or_zero::<u64>(signal, u64::from(nofile_at));
        (rec.nofile, rec.nofile_known) = (nofile, u32::from(known));
    }
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(&files_ref().stat) } != 0 && signal != 0 {
        rec.stat_known = u32::from(mm_read && stat(task as u64, signal, rec));
    }
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(&files_ref().sums) } != 0 && signal != 0 {
        rec.sums_known = u32::from(thread_sums(signal, rec));
    }
    // SAFETY: as above.
    if unsafe { core::ptr::read_volatile(&files_ref().fds) } != 0 {
        rec.fds_known = u32::from(fd_count(task as u64, rec));
    }
    // SAFETY: as in `census`.
    unsafe {
        let seq = core::ptr::read_volatile(&(*meta).seq);
        helpers::bpf_seq_write(seq.cast(), (rec as *const ProcessRecord).cast(), size_of::<ProcessRecord>() as u32);
    }
    0
}

/// The memory part of `rec` from address space `mm`: `counts` and
/// `total_vm` as stat reads them, and where the memory offsets are known
/// the high-water mark and the whole counters (`whole`); false if what
/// stat reads could not be read.
#[inline(always)]
fn memory(mm: u64, rec: &mut ProcessRecord) -> bool {
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (on, hiwater_at, c0, stride, percpu, total_vm_at) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().memory),
            core::ptr::read_volatile(&files_ref().mm_hiwater_rss),
            core::ptr::read_volatile(&files_ref().mm_counter0),
            core::ptr::read_volatile(&files_ref().mm_counter_stride),
            core::ptr::read_volatile(&files_ref().mm_percpu),
            core::ptr::read_volatile(&files_ref().mm_total_vm),
        )
    };
    let at = |i: u32| mm + u64::from(c0) + u64::from(i * stride);
    let mut ok = true;
    for (i, c) in rec.counts.iter_mut().enumerate() {
        let (v, r) = read_or_zero::<i64>(at(i as u32), 0);
        *c = v;
        ok &= r;
    }
    let (total_vm, t_ok) = read_or_zero::<u64>(mm, u64::from(total_vm_at));
    rec.total_vm = total_vm;
    if !(ok && t_ok) {
        rec.counts = [0; 4];
        return false;
    }
    if on == 0 {
        return true;
    }
    let (hiwater_rss, hw_ok) = read_or_zero::<u64>(mm, u64::from(hiwater_at));
    rec.hiwater_rss = hiwater_rss;
    let whole = if percpu == 0 {
        rec.counters = rec.counts;
        hw_ok
    } else {
        hw_ok && percpu_sums(at(0), stride, &mut rec.counters)
    };
    rec.whole = u32::from(whole);
    true
}

/// The stat part of `rec` from `task` and its `signal`; false if a field
/// could not be read.
#[inline(always)]
fn stat(task: u64, signal: u64, rec: &mut ProcessRecord) -> bool {
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (parent_at, tgid_at, state_at, exit_at, flags_at, start_at, comm_at) = unsafe {
        (
            core::ptr::read_volatile(&config_ref().task_real_parent),
            core::ptr::read_volatile(&config_ref().task_tgid),
            core::ptr::read_volatile(&files_ref().task_state),
            core::ptr::read_volatile(&files_ref().task_exit_state),
            core::ptr::read_volatile(&files_ref().task_flags),
            core::ptr::read_volatile(&files_ref().task_start_boottime),
            core::ptr::read_volatile(&config_ref().task_comm),
        )
    };
    // SAFETY: as above.
    let (min_at, maj_at, delays_at, blkio_at) = unsafe {
        (
            core::ptr::read_volatile(&config_ref().task_min_flt),
            core::ptr::read_volatile(&config_ref().task_maj_flt),
            core::ptr::read_volatile(&files_ref().task_delays),
            core::ptr::read_volatile(&files_ref().delays_blkio),
        )
    };
    // SAFETY: as above.
    let (threads_at, cutime_at, cstime_at) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().signal_nr_threads),
            core::ptr::read_volatile(&files_ref().signal_cutime),
            core::ptr::read_volatile(&files_ref().signal_cstime),
        )
    };
    let mut ok = true;
    let parent = get::<u64>(&mut ok, task, parent_at);
    rec.ppid = if parent == 0 { 0 } else { get::<u32>(&mut ok, parent, tgid_at) };
    rec.state = get::<u32>(&mut ok, task, state_at);
    rec.exit_state = get::<u32>(&mut ok, task, exit_at);
    rec.flags = get::<u32>(&mut ok, task, flags_at);
    rec.nr_threads = get::<u32>(&mut ok, signal, threads_at);
    rec.start_boottime = get::<u64>(&mut ok, task, start_at);
    rec.cutime = get::<u64>(&mut ok, signal, cutime_at);
    rec.cstime = get::<u64>(&mut ok, signal, cstime_at);
    rec.min_flt = get::<u64>(&mut ok, task, min_at);
    rec.maj_flt = get::<u64>(&mut ok, task, maj_at);
    let delays = get::<u64>(&mut ok, task, delays_at);
    rec.blkio_delay = if delays == 0 { 0 } else { get::<u64>(&mut ok, delays, blkio_at) };
    rec.comm = get::<[u8; messer_common::COMM_LEN]>(&mut ok, task, comm_at);
    ok
}

/// `rec.io` and `rec.gtime_all` of the process whose `signal` it is: what
/// exited threads left in `signal` plus each live thread's own, walked
/// from `signal->thread_head` as the kernel's `for_each_thread` does (the
/// iterator runs under RCU). Lockless, as 6.18's /proc/<pid>/io reads
/// them: a thread that exits moves its counters into `signal` and leaves
/// the list inside one write section of `signal->stats_lock`, so a walk
/// that saw its sequence even and unchanged saw each thread exactly once.
/// False if it changed, a read failed, or the process has more than
/// `SUM_THREADS` threads (the loader reads /proc then).
#[inline(always)]
fn thread_sums(signal: u64, rec: &mut ProcessRecord) -> bool {
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (seq_at, head_at, node_at, ioac_at, gtime_at) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().signal_stats_seq),
            core::ptr::read_volatile(&files_ref().signal_thread_head),
            core::ptr::read_volatile(&files_ref().task_thread_node),
            core::ptr::read_volatile(&files_ref().signal_ioac),
            core::ptr::read_volatile(&files_ref().signal_gtime),
        )
    };
    let mut ok = true;
    let before = get::<u32>(&mut ok, signal, seq_at);
    if !ok || before & 1 != 0 {
        return false;
    }
    rec.gtime_all = get::<u64>(&mut ok, signal, gtime_at);
    ok &= add_io(signal + u64::from(ioac_at), &mut rec.io);
    let head = signal + u64::from(head_at);
    let mut walk = Walk { node: get::<u64>(&mut ok, head, 0), head, node_at: u64::from(node_at), ok: 1, walked: 0 };
    // SAFETY: bpf_loop calls `walk_thread` with `walk`, a local that
    // outlives the call; its flags say what happened.
    unsafe {
        helpers::generated::bpf_loop(SUM_THREADS, walk_thread as *mut c_void, (&mut walk as *mut Walk).cast(), 0);
    }
    let after = get::<u32>(&mut ok, signal, seq_at);
    ok && walk.ok != 0 && walk.walked != 0 && after == before
}

/// `rec.num_fds`: the bits set in the `open_fds` bitmap of `task`'s file
/// table, `max_fds` bits long, as /proc/<pid>/fd's size counts them from
/// 6.2 (under RCU, as the iterator runs; 0 without a file table). False if
/// a read failed or the table is longer than `FD_WORDS_MAX` words.
#[inline(always)]
fn fd_count(task: u64, rec: &mut ProcessRecord) -> bool {
    // SAFETY: plain reads of the loader's statics (each alone: constants).
    let (files_at, fdt_at, max_at, open_at) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().task_files),
            core::ptr::read_volatile(&files_ref().files_fdt),
            core::ptr::read_volatile(&files_ref().fdt_max_fds),
            core::ptr::read_volatile(&files_ref().fdt_open_fds),
        )
    };
    let mut ok = true;
    let files = get::<u64>(&mut ok, task, files_at);
    if !ok || files == 0 {
        rec.num_fds = 0;
        return ok;
    }
    let fdt = get::<u64>(&mut ok, files, fdt_at);
    if !ok || fdt == 0 {
        return false;
    }
    let max_fds = get::<u32>(&mut ok, fdt, max_at);
    let open = get::<u64>(&mut ok, fdt, open_at);
    let words = max_fds.div_ceil(64);
    if !ok || open == 0 || words > FD_WORDS_MAX {
        return false;
    }
    // The usual table (64 descriptors) in one read, else a loop.
    if words == 1 {
        let word = get::<u64>(&mut ok, open, 0);
        rec.num_fds = ones(word, max_fds);
        return ok;
    }
    let mut count = FdCount { open, bits: u64::from(max_fds), count: 0, ok: 1 };
    // SAFETY: bpf_loop calls `count_word` with `count`, a local that
    // outlives the call.
    unsafe {
        helpers::generated::bpf_loop(words, count_word as *mut c_void, (&mut count as *mut FdCount).cast(), 0);
    }
    rec.num_fds = count.count as u32;
    count.ok != 0
}

/// The set bits of `word` among the first `bits` (all 64 from 64 on).
#[inline(always)]
fn ones(word: u64, bits: u32) -> u32 {
    (word & low_bits(u64::from(bits))).count_ones()
}

/// Where a count of a descriptor bitmap is (`fd_count`); scalars only.
#[repr(C)]
struct FdCount {
    open: u64,
    bits: u64,
    count: u64,
    ok: u64,
}

/// One word of a descriptor bitmap, called by bpf_loop: adds its set bits
/// (of those within `bits`) to the count; 1 (stop) on a failed read.
#[inline(never)]
extern "C" fn count_word(index: u32, count: *mut c_void) -> i64 {
    // SAFETY: the `FdCount` that `fd_count` passed.
    let c = unsafe { &mut *(count as *mut FdCount) };
    let first = u64::from(index) * 64;
    if first >= c.bits {
        return 1;
    }
    let mut ok = true;
    let word = get::<u64>(&mut ok, c.open, index.wrapping_mul(8));
    if !ok {
        c.ok = 0;
        return 1;
    }
    let left = c.bits - first;
    c.count += u64::from(ones(word, if left >= 64 { 64 } else { left as u32 }));
    0
}

/// Where a walk of a thread list is (`thread_sums`); scalars only.
#[repr(C)]
struct Walk {
    node: u64,
    head: u64,
    node_at: u64,
    ok: u64,
    walked: u64,
}

/// One step of a thread-list walk, called by bpf_loop (verified once, not
/// once per thread): adds the thread at `walk.node` to this CPU's record
/// and moves on; 1 (stop) at the list's head or on a failed read.
#[inline(never)]
extern "C" fn walk_thread(_index: u32, walk: *mut c_void) -> i64 {
    // SAFETY: the `Walk` that `thread_sums` passed.
    let w = unsafe { &mut *(walk as *mut Walk) };
    if w.node == w.head || w.node == 0 {
        w.walked = u64::from(w.node == w.head);
        return 1;
    }
    let Some(rec) = PROCESS_SCRATCH.get_ptr_mut(0) else {
        w.ok = 0;
        return 1;
    };
    // SAFETY: this CPU's scratch entry (see `PROCESS_SCRATCH`).
    let rec = unsafe { &mut *rec };
    let mut ok = add_thread(w.node.wrapping_sub(w.node_at), rec);
    w.node = get::<u64>(&mut ok, w.node, 0);
    if !ok {
        w.ok = 0;
        return 1;
    }
    0
}

/// Adds thread `task`'s IO counters and guest time to `rec`'s sums.
#[inline(always)]
fn add_thread(task: u64, rec: &mut ProcessRecord) -> bool {
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (ioac_at, gtime_at) = unsafe {
        (core::ptr::read_volatile(&files_ref().task_ioac), core::ptr::read_volatile(&files_ref().task_gtime))
    };
    let mut ok = add_io(task + u64::from(ioac_at), &mut rec.io);
    rec.gtime_all += get::<u64>(&mut ok, task, gtime_at);
    ok
}

/// Adds the `task_io_accounting` at `ioac` to `io` (`IO_FIELDS` order).
#[inline(always)]
fn add_io(ioac: u64, io: &mut [u64; 7]) -> bool {
    let mut ok = true;
    for (i, v) in io.iter_mut().enumerate() {
        // SAFETY: a plain read of the loader's static (a constant).
        let at = unsafe { core::ptr::read_volatile(&files_ref().ioac[i]) };
        *v += get::<u64>(&mut ok, ioac, at);
    }
    ok
}

/// A probe read of the `T` at `base + at`; clears `ok` if it failed.
#[inline(always)]
fn get<T: Copy + Default>(ok: &mut bool, base: u64, at: u32) -> T {
    let (v, r) = read_or_zero::<T>(base, u64::from(at));
    *ok &= r;
    v
}

/// The four `percpu_counter`s from `first` (`stride` bytes apart, each
/// address its `count`), summed as `percpu_counter_sum` does: `count` plus
/// each online CPU's part. Read without the counters' locks: a try whose
/// lock word was held, or whose `count` moved while the parts were read
/// (the kernel folds a part into `count` under the lock), is tried again.
/// False if no try settled or a part could not be read.
#[inline(always)]
fn percpu_sums(first: u64, stride: u32, out: &mut [i64; 4]) -> bool {
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (lock_from, parts_from, nr_cpus) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().pc_lock_from_count),
            core::ptr::read_volatile(&files_ref().pc_counters_from_count),
            core::ptr::read_volatile(&files_ref().nr_cpus),
        )
    };
    let signed = |v: u32| v as i32 as i64 as u64;
    let at = |i: u32| first + u64::from(i * stride);
    for _ in 0..SUM_TRIES {
        let mut counts = [0i64; 4];
        let mut parts = [0u64; 4];
        let mut ok = true;
        for i in 0..4u32 {
            let (lock, l_ok) = read_or_zero::<u32>(at(i), signed(lock_from));
            let (count, c_ok) = read_or_zero::<i64>(at(i), 0);
            let (p, p_ok) = read_or_zero::<u64>(at(i), signed(parts_from));
            ok &= l_ok && c_ok && p_ok && lock == 0 && p != 0;
            counts[i as usize] = count;
            parts[i as usize] = p;
        }
        if !ok {
            continue;
        }
        let mut sums = counts;
        for cpu in 0..PERCPU_MAX_CPUS {
            if cpu >= nr_cpus {
                break;
            }
            let Some(c) = CPU_OFFSETS.get(cpu) else { return false };
            // A CPU that was offline at the start has no part: the kernel
            // folded it into `count` when the CPU went down.
            if c.seen == 0 {
                continue;
            }
            for i in 0..4 {
                let (part, p_ok) = read_or_zero::<i32>(parts[i], c.offset);
                if !p_ok {
                    return false;
                }
                sums[i] += i64::from(part);
            }
        }
        let mut settled = true;
        for i in 0..4u32 {
            let (lock, l_ok) = read_or_zero::<u32>(at(i), signed(lock_from));
            let (count, c_ok) = read_or_zero::<i64>(at(i), 0);
            settled &= l_ok && c_ok && lock == 0 && count == counts[i as usize];
        }
        if settled {
            *out = sums;
            return true;
        }
    }
    false
}

/// Not attached anywhere: run once on each online CPU by the loader
/// (BPF_PROG_TEST_RUN on that CPU) to find that CPU's per-CPU offset for
/// the memory iterator's sums. The kernel's BTF here carries no per-CPU
/// type tags (no `bpf_per_cpu_ptr`), so the offset is read where x86-64
/// keeps it, in the per-CPU variable `this_cpu_off`, found from this CPU's
/// run queue (the per-CPU `runqueues`, reached from `current`) by the
/// distance of the two variables in the per-CPU section. `cpu_number` is
/// read beside it for the loader to check the finding.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn messer_cpu_offset(_ctx: RawTracePointContext) -> i32 {
    // SAFETY: helpers without arguments.
    let (cpu, task) = unsafe { (helpers::bpf_get_smp_processor_id(), helpers::bpf_get_current_task()) };
    let Some(rq) = task_rq(task) else { return 0 };
    // SAFETY: plain reads of the loader's static (each alone: constants).
    let (to_off, to_cpu) = unsafe {
        (
            core::ptr::read_volatile(&files_ref().rq_to_this_cpu_off),
            core::ptr::read_volatile(&files_ref().rq_to_cpu_number),
        )
    };
    let signed = |v: u32| v as i32 as i64 as u64;
    let (offset, o_ok) = read_or_zero::<u64>(rq, signed(to_off));
    let (cpu_number, n_ok) = read_or_zero::<u32>(rq, signed(to_cpu));
    if !(o_ok && n_ok) {
        return 0;
    }
    if let Some(slot) = CPU_OFFSETS.get_ptr_mut(cpu) {
        // SAFETY: this CPU's entry, written only here and by nobody else.
        unsafe { *slot = CpuOffset { rq, offset, cpu_number, seen: 1 } };
    }
    0
}
