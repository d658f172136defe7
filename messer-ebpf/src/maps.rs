//! The maps shared with the loader, the load-time configuration, and the
//! small helpers every program uses to credit counters.
//!
//! Map sizes here are placeholders: the loader sets them at load time.

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_F_NO_PREALLOC},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use messer_common::{
    COMM_LEN, CgroupTarget, Config, Counters, CpuOffset, EpochCounters, Event, FileOffsets, LOST_UNKNOWN, MARK_CHUNK,
    PERCPU_MAX_CPUS, ProcessRecord, RunSlot, RunqHist, SchedCounts, TRACKED_LEFT, ThreadState, Tracked, stat,
};

/// The tracked set: tgid -> what we know about it.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(1, 0);

/// Threads of tracked processes: tid -> process and run-queue state.
#[map]
pub static THREADS: HashMap<u32, ThreadState> = HashMap::with_max_entries(1, 0);

/// Per CPU: where a new thread-map entry is made before it is inserted
/// (an entry is 184 bytes: on the stack it pushed the cgroup programs,
/// whose per-thread adoption is a subprogram, past the 512 bytes two
/// frames may use together on Linux 6.1).
#[map]
pub static THREAD_SCRATCH: PerCpuArray<ThreadState> = PerCpuArray::with_max_entries(1, 0);

/// The process iterator's record, built in place (264 bytes: on the stack
/// it leaves too little of the 512 bytes for the per-CPU sums and the
/// per-thread subprogram). Iterator programs run with migration off, and
/// only the loader's sampling thread runs the iterator.
#[map]
pub static PROCESS_SCRATCH: PerCpuArray<ProcessRecord> = PerCpuArray::with_max_entries(1, 0);

/// The sockets the census has reported for the task it walks. In a map
/// value, not on the stack: a count the verifier knows (0, 1, 2, ...)
/// would make it tell apart every step of the walk, a state each.
#[map]
pub static CENSUS_FOUND: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Inserts (or overwrites) thread `tid`'s entry, made by `fill` from zero
/// in this CPU's scratch entry; false if it could not be.
#[inline(always)]
pub fn insert_thread(tid: u32, fill: impl FnOnce(&mut ThreadState)) -> bool {
    let Some(p) = THREAD_SCRATCH.get_ptr_mut(0) else { return false };
    // SAFETY: this CPU's scratch entry; programs run with preemption off,
    // and no program that uses it runs in interrupt context.
    let t = unsafe { &mut *p };
    zero(t);
    fill(t);
    THREADS.insert(tid, t, 0).is_ok()
}

/// One byte per thread id, 1 while the thread has a `THREADS` entry, so
/// that a switch-in learns whether the thread is tracked from an array
/// lookup (which the verifier inlines) instead of a hash lookup, and takes
/// the tgid from the task. Sized from pid_max at load (a thread id beyond
/// it falls back to the hash lookup); the loader marks the threads it
/// seeds through a shared mapping, byte by byte, so that it never
/// overwrites a mark the kernel side set meanwhile.
#[map]
pub static THREAD_MARKS: Array<[u8; MARK_CHUNK]> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Per-CPU counters per tracked tgid. Not preallocated: its size is
/// entries x CPUs x value, which would be large on big machines.
#[map]
pub static COUNTERS: PerCpuHashMap<u32, EpochCounters> = PerCpuHashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// One all-zero `EpochCounters`, never written: new `COUNTERS` entries are
/// inserted from it, since the value is too big for a program's stack.
#[map]
pub static ZERO_COUNTERS: Array<EpochCounters> = Array::with_max_entries(1, 0);

/// Inserts all-zero counters for `tgid` with `flags`; false if that failed
/// (map full, or with BPF_NOEXIST present).
#[inline(always)]
pub fn insert_zero_counters(tgid: u32, flags: u64) -> bool {
    match ZERO_COUNTERS.get(0) {
        Some(zero) => COUNTERS.insert(tgid, zero, flags).is_ok(),
        None => false,
    }
}

/// Process `tgid` (child of tracked `parent_tgid`, or 0) joins the tracked
/// set, with zero counters (a fresh entry: a reused pid must not inherit an
/// old process's counts); false if it could not (counted).
#[inline(always)]
pub fn track(tgid: u32, parent_tgid: u32) -> bool {
    if TRACKED.insert(tgid, Tracked { parent_tgid, flags: 0 }, 0).is_err() {
        bump(stat::TRACKED_INSERT_FAILED);
        return false;
    }
    if !insert_zero_counters(tgid, 0) {
        bump(stat::COUNTERS_INSERT_FAILED);
    }
    true
}

/// Per CPU: the thread running there, since when it is uncredited, and the
/// CPU's flush epoch.
#[map]
pub static RUNNING: PerCpuArray<RunSlot> = PerCpuArray::with_max_entries(1, 0);

/// The loader's current epoch, written before it flushes: a CPU it did not
/// flush (nothing pending there) enters it when it next counts (`claim`).
/// The loader writes it through a shared mapping.
#[map]
pub static EPOCH: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Run-queue waits of the tracked tree per CPU (`--runq-latency`).
#[map]
pub static RUNQ_HIST: PerCpuArray<RunqHist> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU error counters, indexed by `messer_common::stat`.
#[map]
pub static STATS: PerCpuArray<[u64; stat::COUNT as usize]> = PerCpuArray::with_max_entries(1, 0);

/// Process events of the tracked tree (fork, exec, exit, comm match), read
/// by the loader at every sample. 256 KiB: about 6500 events between reads.
/// Each CPU's per-CPU offset as `messer_cpu_offset` found it there (by
/// CPU id), for the memory iterator's per-CPU sums.
#[map]
pub static CPU_OFFSETS: Array<CpuOffset> = Array::with_max_entries(PERCPU_MAX_CPUS, 0);

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Filled in by the loader (tracefs offsets, options) before loading.
///
/// A plain static rather than aya-ebpf's `Global<Config>`: `Global` offers
/// only a load of the whole value, and the hot paths read single members
/// (`task_offsets`, the census) so that the verifier sees each as a
/// constant of the frozen map and accepts direct loads at it; a whole copy
/// would also put the struct on sched_switch's 512-byte stack.
#[unsafe(no_mangle)]
static MESSER_CONFIG: Config = Config {
    task_pid: 0,
    task_sum_exec_runtime: 0,
    sys_exit_ret: 0,
    exit_has_group_dead: 0,
    task_signal: 0,
    signal_live: 0,
    follow_children: 0,
    task_tgid: 0,
    task_real_parent: 0,
    task_exit_code: 0,
    task_run_delay: 0,
    task_pcount: 0,
    has_sched_info: 0,
    task_utime: 0,
    task_stime: 0,
    task_min_flt: 0,
    task_maj_flt: 0,
    match_comm: 0,
    oom_victim_pid: 0,
    runq_hist: 0,
    threads: 0,
    task_comm: 0,
    rq_clocks: 0,
    task_cfs_rq: 0,
    cfs_rq_rq: 0,
    rq_clock: 0,
    rq_clock_task: 0,
    comm: [0; COMM_LEN],
};

/// Filled in by the loader (BTF offsets) before loading.
#[unsafe(no_mangle)]
static MESSER_FILES: FileOffsets = FileOffsets {
    classify_io: 0,
    census: 0,
    regs_arg0: 0,
    task_files: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_inode: 0,
    file_private: 0,
    inode_mode: 0,
    inode_ino: 0,
    socket_sk: 0,
    sk_family: 0,
    sk_state: 0,
    sk_protocol: 0,
    task_state: 0,
    task_exit_state: 0,
    task_group_leader: 0,
    memory: 0,
    task_mm: 0,
    mm_hiwater_rss: 0,
    mm_counter0: 0,
    mm_counter_stride: 0,
    mm_percpu: 0,
    pc_lock_from_count: 0,
    pc_counters_from_count: 0,
    nr_cpus: 0,
    rq_to_this_cpu_off: 0,
    rq_to_cpu_number: 0,
    nofile: 0,
    task_signal: 0,
    signal_nofile: 0,
    stat: 0,
    task_flags: 0,
    task_start_boottime: 0,
    task_gtime: 0,
    task_delays: 0,
    delays_blkio: 0,
    signal_nr_threads: 0,
    signal_cutime: 0,
    signal_cstime: 0,
    mm_total_vm: 0,
    sums: 0,
    signal_thread_head: 0,
    task_thread_node: 0,
    signal_stats_seq: 0,
    signal_ioac: 0,
    signal_gtime: 0,
    task_ioac: 0,
    ioac: [0; 7],
    fds: 0,
    fdt_open_fds: 0,
};

/// Filled in by the loader (the target cgroup and BTF offsets) before loading.
#[unsafe(no_mangle)]
static MESSER_CGROUP: CgroupTarget = CgroupTarget {
    enabled: 0,
    level: 0,
    id: 0,
    task_cgroups: 0,
    cset_dfl_cgrp: 0,
    cgrp_level: 0,
    cgrp_ancestors: 0,
    ancestors_are_ids: 0,
    cgrp_kn: 0,
    kn_id: 0,
    signal_thread_head: 0,
    task_thread_node: 0,
    _pad: 0,
};

/// The target cgroup's settings.
#[inline(always)]
pub fn cgroup_target() -> CgroupTarget {
    // SAFETY: a plain read of a static; volatile so that the compiler does not
    // fold in the placeholder values above.
    unsafe { core::ptr::read_volatile(&MESSER_CGROUP) }
}

/// Is membership decided by a cgroup (`--cgroup`)?
#[inline(always)]
pub fn by_cgroup() -> bool {
    // SAFETY: as in `cgroup_target`, one member.
    unsafe { core::ptr::read_volatile(&MESSER_CGROUP.enabled) != 0 }
}

/// The file offsets' static, for reading single members.
#[inline(always)]
pub fn files_ref() -> &'static FileOffsets {
    &MESSER_FILES
}

/// The configuration's static, for reading single members.
#[inline(always)]
pub fn config_ref() -> &'static Config {
    &MESSER_CONFIG
}

/// The configuration as the loader wrote it.
#[inline(always)]
pub fn config() -> Config {
    // SAFETY: a plain read of a static; volatile so that the compiler does not
    // fold in the placeholder values above.
    unsafe { core::ptr::read_volatile(&MESSER_CONFIG) }
}

/// Byte offsets in `task_struct` the scheduler's hot path reads.
pub struct TaskOffsets {
    pub pid: u32,
    pub tgid: u32,
    pub sum_exec: u32,
    pub run_delay: u32,
    pub pcount: u32,
    pub has_sched_info: bool,
    pub utime: u32,
    pub stime: u32,
    pub min_flt: u32,
    pub maj_flt: u32,
}

/// The task offsets, each read alone from the frozen configuration, so
/// that the verifier knows them as constants and accepts direct loads from
/// a task pointer of a BTF tracepoint.
#[inline(always)]
pub fn task_offsets() -> TaskOffsets {
    // SAFETY: plain reads of a static (volatile: see `config`).
    unsafe {
        TaskOffsets {
            pid: core::ptr::read_volatile(&MESSER_CONFIG.task_pid),
            tgid: core::ptr::read_volatile(&MESSER_CONFIG.task_tgid),
            sum_exec: core::ptr::read_volatile(&MESSER_CONFIG.task_sum_exec_runtime),
            run_delay: core::ptr::read_volatile(&MESSER_CONFIG.task_run_delay),
            pcount: core::ptr::read_volatile(&MESSER_CONFIG.task_pcount),
            has_sched_info: core::ptr::read_volatile(&MESSER_CONFIG.has_sched_info) != 0,
            utime: core::ptr::read_volatile(&MESSER_CONFIG.task_utime),
            stime: core::ptr::read_volatile(&MESSER_CONFIG.task_stime),
            min_flt: core::ptr::read_volatile(&MESSER_CONFIG.task_min_flt),
            maj_flt: core::ptr::read_volatile(&MESSER_CONFIG.task_maj_flt),
        }
    }
}

/// A task's (`run_delay`, `pcount`) read with the probe helper (for
/// programs whose task pointer is untyped); zeros without sched_info.
#[inline(always)]
pub fn sched_info(task: u64) -> Option<(u64, u64)> {
    let cfg = config();
    if cfg.has_sched_info == 0 {
        return Some((0, 0));
    }
    Some((read_field::<u64>(task, cfg.task_run_delay)?, read_field::<u64>(task, cfg.task_pcount)?))
}

/// A task's (`utime`, `stime`) read with the probe helper.
#[inline(always)]
pub fn ticks(task: u64) -> Option<(u64, u64)> {
    let cfg = config();
    Some((read_field::<u64>(task, cfg.task_utime)?, read_field::<u64>(task, cfg.task_stime)?))
}

/// A task's (`min_flt`, `maj_flt`) read with the probe helper.
#[inline(always)]
pub fn faults(task: u64) -> Option<(u64, u64)> {
    let cfg = config();
    Some((read_field::<u64>(task, cfg.task_min_flt)?, read_field::<u64>(task, cfg.task_maj_flt)?))
}

/// A `T` at byte `offset` of a kernel object behind a BTF-typed pointer (a
/// task passed to a BTF tracepoint or an iterator, objects reached from it
/// through typed members): a direct load, which the verifier checks against
/// the kernel's layout (offsets are constants of the frozen configuration)
/// and the JIT guards (a fault reads 0), without a helper call.
#[inline(always)]
pub fn task_field<T: Copy>(task: *const u8, offset: u32) -> T {
    // SAFETY: a kernel-typed pointer; the verifier checks the access
    // against the object's layout and the JIT guards the load.
    unsafe { core::ptr::read_volatile(task.wrapping_add(offset as usize) as *const T) }
}

/// Counts one failure of kind `which`.
#[inline(always)]
pub fn bump(which: u32) {
    // One entry holds every count: the loader reads them in one lookup.
    if let Some(p) = STATS.get_ptr_mut(0) {
        // SAFETY: per-CPU slot. All our programs run with preemption off
        // (tracepoint programs, syscall ones included, and the flush IPI), so
        // a plain add on per-CPU data cannot interleave with another.
        let counts = unsafe { &mut *p };
        if let Some(c) = counts.get_mut(which as usize) {
            *c += 1;
        }
    }
}

/// (thread id, process id) of `current`.
#[inline(always)]
pub fn current_ids() -> (u32, u32) {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    (pid_tgid as u32, (pid_tgid >> 32) as u32)
}

/// Is `tgid` in the tracked set?
#[inline(always)]
pub fn is_tracked(tgid: u32) -> bool {
    TRACKED.get_ptr(tgid).is_some()
}

/// Is `tgid` tracked and still counting (not moved out of the target
/// cgroup)?
#[inline(always)]
pub fn counting(tgid: u32) -> bool {
    // SAFETY: map value pointer from a successful lookup.
    TRACKED.get_ptr(tgid).is_some_and(|t| unsafe { (*t).flags } & TRACKED_LEFT == 0)
}

/// Thread `tid`'s mark, if the array covers it.
#[inline(always)]
pub fn mark(tid: u32) -> Option<*mut u8> {
    let chunk = THREAD_MARKS.get_ptr_mut(tid / MARK_CHUNK as u32)?;
    // SAFETY: within the chunk (the index is below MARK_CHUNK).
    Some(unsafe { (chunk as *mut u8).add(tid as usize % MARK_CHUNK) })
}

/// Sets (1) or clears (0) thread `tid`'s mark.
#[inline(always)]
pub fn set_mark(tid: u32, value: u8) {
    if let Some(m) = mark(tid) {
        // SAFETY: a byte of a map value; single-byte stores do not tear.
        unsafe { core::ptr::write_volatile(m, value) }
    }
}

/// This CPU's run slot.
#[inline(always)]
pub fn slot() -> Option<*mut RunSlot> {
    RUNNING.get_ptr_mut(0)
}

/// Called before anything is counted on this CPU or a tracked thread is
/// noted running here. A CPU with nothing pending may have been left out of
/// the loader's last flushes (see `RunSlot::pending`): it marks itself
/// pending, then, after a full barrier, enters the loader's epoch. Either
/// the loader, which writes `EPOCH` before it reads the slots, sees the
/// mark and flushes this CPU, or this CPU sees the new epoch (both orders
/// are fenced, so they cannot both miss). Nothing of the old epoch is here
/// to move (nothing was pending), so the CPU's boundary is the loader's
/// write, before which no tracked thread ran here.
#[inline(always)]
pub fn claim(slot: &mut RunSlot) {
    if slot.pending != 0 {
        return;
    }
    slot.pending = 1;
    // A locked add (x86's JIT emits `lock add` for BPF_XADD): a full barrier
    // between the store above and the load below.
    // SAFETY: a field of this CPU's slot.
    unsafe { core::arch::asm!("lock *(u64 *)({p} + 0) += {v}", p = in(reg) &raw mut slot.fence, v = in(reg) 1u64) };
    if let Some(g) = EPOCH.get_ptr(0) {
        // SAFETY: map value pointer from a successful lookup.
        let g = unsafe { core::ptr::read_volatile(g) };
        if g > slot.epoch {
            slot.epoch = g;
        }
    }
}

/// `tgid`'s counters on this CPU in the half of `epoch`, created if missing.
#[inline(always)]
pub fn counters(tgid: u32, epoch: u64) -> Option<*mut Counters> {
    let c = match COUNTERS.get_ptr_mut(tgid) {
        Some(c) => c,
        None => {
            if !insert_zero_counters(tgid, BPF_NOEXIST) {
                // Lost a race with another CPU (fine) or the map is full.
                if COUNTERS.get_ptr_mut(tgid).is_none() {
                    bump(stat::COUNTERS_INSERT_FAILED);
                    return None;
                }
            }
            COUNTERS.get_ptr_mut(tgid)?
        }
    };
    // SAFETY: a map value pointer from a successful lookup.
    let halves = unsafe { &mut (*c).half };
    Some(if epoch & 1 == 0 { &mut halves[0] } else { &mut halves[1] })
}

/// The CPU's scheduler accumulator for process `tgid` (see `RunSlot::acc`);
/// what it held for another process goes to that one's counters first.
#[inline(always)]
pub fn sched_acc(slot: &mut RunSlot, tgid: u32) -> &mut SchedCounts {
    claim(slot);
    if slot.acc_tgid != tgid {
        spill(slot);
        slot.acc_tgid = tgid;
    }
    slot.acc_dirty = 1;
    &mut slot.acc
}

/// Notes `waits` run-queue waits of a tracked thread that together lasted
/// `delay_ns`, seen in this CPU's `epoch` (`--runq-latency`): one wait goes
/// into its bucket; several cannot be told apart and are counted as such.
#[inline(always)]
pub fn note_waits(epoch: u64, delay_ns: u64, waits: u64) {
    // SAFETY: a plain read of the loader's static (alone: a constant).
    if waits == 0 || unsafe { core::ptr::read_volatile(&MESSER_CONFIG.runq_hist) } == 0 {
        return;
    }
    let Some(h) = RUNQ_HIST.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's value; the scheduler programs and the flush run
    // with interrupts off, so they cannot interleave on one CPU.
    let h = unsafe { &mut *h };
    let p = (epoch & 1) as usize;
    if waits != 1 {
        h.unresolved[p] += waits;
        return;
    }
    let i = messer_common::runq_bucket(delay_ns);
    if i < messer_common::RUNQ_BUCKETS {
        h.count[p][i] += 1;
    }
    if h.max_epoch[p] != epoch {
        h.max_epoch[p] = epoch;
        h.max_ns[p] = delay_ns;
    } else if delay_ns > h.max_ns[p] {
        h.max_ns[p] = delay_ns;
    }
}

/// Adds the CPU's scheduler accumulator to its process's counters in the
/// CPU's epoch and empties it. If the counters cannot be had, the failure
/// is counted (`COUNTERS_INSERT_FAILED`).
#[inline(always)]
pub fn spill(slot: &mut RunSlot) {
    if slot.acc_dirty == 0 {
        return;
    }
    if let Some(c) = counters(slot.acc_tgid, slot.epoch) {
        // SAFETY: map value pointer; the scheduler programs and the flush
        // run with interrupts off, and no other program writes these fields.
        let c = unsafe { &mut *c };
        let a = &slot.acc;
        c.on_cpu_ns = c.on_cpu_ns.wrapping_add(a.on_cpu_ns);
        c.runq_wait_ns += a.runq_wait_ns;
        c.runq_waits += a.runq_waits;
        c.switches_voluntary += a.switches_voluntary;
        c.switches_involuntary += a.switches_involuntary;
        c.user_ns += a.user_ns;
        c.system_ns += a.system_ns;
        c.faults_minor += a.faults_minor;
        c.faults_major += a.faults_major;
    }
    zero(&mut slot.acc);
    slot.acc_dirty = 0;
}

/// Sets `v` to all zeros, one 8-byte store per word. A plain assignment of
/// a zeroed value becomes a call to `memset`, which aya-ebpf implements as
/// a loop over bytes: five instructions a byte, 360 for the 72 bytes of a
/// `SchedCounts`, run at every switch between two processes' threads on a
/// CPU. Volatile stores are not merged back into a `memset`.
#[inline(always)]
pub fn zero<T>(v: &mut T) {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() % 8 == 0) };
    let p = (v as *mut T).cast::<u64>();
    let mut i = 0;
    while i < size_of::<T>() / 8 {
        // SAFETY: word `i` of `v` (its size is a multiple of 8, checked
        // above, and it is 8-aligned).
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
        i += 1;
    }
}

/// Reads a `T` at byte `offset` of kernel object `base` (a task_struct
/// field at an offset from this kernel's BTF).
#[inline(always)]
pub fn read_field<T>(base: u64, offset: u32) -> Option<T> {
    let at = base.checked_add(u64::from(offset))?;
    // SAFETY: the helper checks the address and fails on a bad one.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel(at as *const T) }.ok()
}

/// The `T` at `base + offset` by a probe read, or zeros where it cannot
/// be read (`ok` false then). The value is always defined: an `Option`'s
/// payload left undefined on failure is a register 6.1's verifier refuses
/// to read.
#[inline(always)]
pub fn read_or_zero<T: Copy + Default>(base: u64, offset: u64) -> (T, bool) {
    // Not zeroed first (an array's zeroing is a `memset` call, see `zero`):
    // the helper writes every byte, the value read or zeros where it fails.
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: the helper checks the source address and fails on a bad one;
    // the destination is a local of `T`'s size.
    let rc = unsafe {
        aya_ebpf::helpers::generated::bpf_probe_read_kernel(
            v.as_mut_ptr().cast(),
            size_of::<T>() as u32,
            base.wrapping_add(offset) as *const core::ffi::c_void,
        )
    };
    // SAFETY: written by the helper in either case (see above).
    (unsafe { v.assume_init() }, rc == 0)
}

/// BPF_NOEXIST (insert only if the key is absent) as map inserts take it.
pub const BPF_NOEXIST: u64 = aya_ebpf::bindings::BPF_NOEXIST as u64;

/// Sends an event about process `pid` (comm of `current`); a full ring
/// buffer is counted.
#[inline(always)]
pub fn emit(kind: u32, pid: u32, ppid: u32, status: u32) {
    // Written in place in the ring buffer: a copy on the stack would be
    // zeroed first by `memset` (see `zero`).
    let Some(mut entry) = EVENTS.reserve::<Event>(0) else {
        bump(stat::EVENTS_LOST);
        return;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record, ours until submitted; every field is
    // written.
    unsafe {
        (*ev).time_ns = aya_ebpf::helpers::bpf_ktime_get_ns();
        (*ev).kind = kind;
        (*ev).pid = pid;
        (*ev).ppid = ppid;
        (*ev).status = status;
        (*ev).comm = current_comm();
    }
    entry.submit(0);
}

/// `current`'s name. Not aya's `bpf_get_current_comm`, which zeroes its
/// buffer first with a `memset` call (see `zero`): the helper writes every
/// byte (zeros where it fails).
#[inline(always)]
pub fn current_comm() -> [u8; COMM_LEN] {
    let mut comm = core::mem::MaybeUninit::<[u8; COMM_LEN]>::uninit();
    // SAFETY: a local of the size passed, written whole by the helper.
    unsafe {
        aya_ebpf::helpers::generated::bpf_get_current_comm(comm.as_mut_ptr().cast(), COMM_LEN as u32);
        comm.assume_init()
    }
}

/// The tgid of the parent (`real_parent`) of kernel task `task`.
#[inline(always)]
pub fn parent_tgid(task: u64) -> u32 {
    let cfg = config();
    read_field::<u64>(task, cfg.task_real_parent).and_then(|p| read_field::<u32>(p, cfg.task_tgid)).unwrap_or(0)
}

/// The offsets from a task to its run queue's clocks, each read alone
/// (constants to the verifier); None where they are not known.
#[inline(always)]
fn rq_offsets() -> Option<(u32, u32, u32, u32)> {
    // SAFETY: plain reads of a static (volatile: see `config`).
    unsafe {
        if core::ptr::read_volatile(&MESSER_CONFIG.rq_clocks) == 0 {
            return None;
        }
        Some((
            core::ptr::read_volatile(&MESSER_CONFIG.task_cfs_rq),
            core::ptr::read_volatile(&MESSER_CONFIG.cfs_rq_rq),
            core::ptr::read_volatile(&MESSER_CONFIG.rq_clock),
            core::ptr::read_volatile(&MESSER_CONFIG.rq_clock_task),
        ))
    }
}

/// The time the run queue of `task` (a BTF-typed pointer: direct loads)
/// has lost to interrupts and the hypervisor, `rq.clock - rq.clock_task`
/// as of its last clock update; `LOST_UNKNOWN` where it cannot be read.
#[inline(always)]
pub fn rq_lost_typed(task: *const u8) -> u64 {
    rq_clocks_typed(task).map_or(LOST_UNKNOWN, |(clock, task_clock)| clock.wrapping_sub(task_clock))
}

/// The clocks (`rq.clock`, `rq.clock_task`) of typed task pointer `task`'s
/// run queue; None where they cannot be read.
#[inline(always)]
pub fn rq_clocks_typed(task: *const u8) -> Option<(u64, u64)> {
    let (cfs_at, rq_at, clock_at, task_clock_at) = rq_offsets()?;
    let cfs = task_field::<*const u8>(task, cfs_at);
    if cfs.is_null() {
        return None;
    }
    let rq = task_field::<*const u8>(cfs, rq_at);
    if rq.is_null() {
        return None;
    }
    Some((task_field::<u64>(rq, clock_at), task_field::<u64>(rq, task_clock_at)))
}

/// The run queue of untyped task pointer `task` (probe reads); None where
/// it cannot be read.
#[inline(always)]
pub fn task_rq(task: u64) -> Option<u64> {
    let (cfs_at, rq_at, _, _) = rq_offsets()?;
    let cfs = read_field::<u64>(task, cfs_at).filter(|p| *p != 0)?;
    read_field::<u64>(cfs, rq_at).filter(|p| *p != 0)
}

/// `rq_lost_typed` for an untyped task pointer (probe reads).
#[inline(always)]
pub fn rq_lost(task: u64) -> u64 {
    let Some((_, _, clock_at, task_clock_at)) = rq_offsets() else { return LOST_UNKNOWN };
    let read = || -> Option<u64> {
        let rq = task_rq(task)?;
        Some(read_field::<u64>(rq, clock_at)?.wrapping_sub(read_field::<u64>(rq, task_clock_at)?))
    };
    read().unwrap_or(LOST_UNKNOWN)
}

/// The time a thread ran on this CPU from `start_ns` (when the queue had
/// lost `start_lost`) to `now_ns` (lost: `lost_now`): the wall time less
/// what the queue lost to interrupts and the hypervisor meanwhile, as
/// `sum_exec_runtime` counts it. The loss is known up to the queue's last
/// clock update (a tick at most ago); a thread's switch-out settles the
/// rest. Nothing where the loss exceeds the wall time (the two clocks
/// differ by nanoseconds); the settlement gets it then.
#[inline(always)]
pub fn ran_ns(start_ns: u64, start_lost: u64, now_ns: u64, lost_now: u64) -> u64 {
    let wall = now_ns.wrapping_sub(start_ns);
    if start_lost == LOST_UNKNOWN || lost_now == LOST_UNKNOWN {
        return wall;
    }
    let lost = lost_now.wrapping_sub(start_lost);
    if lost < wall { wall - lost } else { 0 }
}
