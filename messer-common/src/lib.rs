//! Types shared by the BPF programs (`messer-ebpf`) and the loader (`messer`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into
//! BPF maps, the user side reads the same bytes back. With the `user` feature
//! the types implement `aya::Pod` so that aya can copy them in and out of maps.
#![no_std]

/// Counters of one tracked process (tgid) on one CPU in one epoch half.
///
/// Per-CPU copies mean the hot path never contends across CPUs; the loader
/// sums the copies when it reads. All values are cumulative.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Nanoseconds the process's threads spent on a CPU. A running thread is
    /// credited by the loader's flush (CLOCK_MONOTONIC since its switch-in);
    /// at switch-out the thread's whole stint is settled to the kernel's own
    /// `se.sum_exec_runtime` gain, so the correction may be negative: this
    /// counter uses wrapping (two's complement) arithmetic.
    pub on_cpu_ns: u64,
    /// Nanoseconds the threads waited runnable on a run queue (from wake-up
    /// or preemption to switch-in; credited at switch-in).
    pub runq_wait_ns: u64,
    /// Number of run-queue waits that ended (switch-ins after a wait).
    pub runq_waits: u64,
    /// Switches out of a thread that blocked (it was not runnable).
    pub switches_voluntary: u64,
    /// Switches out of a thread that was still runnable (preempted).
    pub switches_involuntary: u64,
    /// The kernel's tick-based classification of the threads' CPU time
    /// (gains of `task_struct.utime` and `.stime`, ns): only their ratio is
    /// used, to split the exact `on_cpu_ns`.
    pub user_ns: u64,
    pub system_ns: u64,
    /// Minor and major page faults of the threads (gains of the kernel's
    /// per-task `min_flt` and `maj_flt`, settled like `user_ns`).
    pub faults_minor: u64,
    pub faults_major: u64,
    /// [`io`] family counters: calls and bytes, indexed by `io::*`.
    pub io_calls: [u64; io::COUNT],
    pub io_bytes: [u64; io::COUNT],
}

/// Syscall families counted at syscall exit, the read/write families split
/// by the kind of file the descriptor names.
pub mod io {
    /// read, pread64, readv, preadv, preadv2 on anything but a socket
    /// (files, pipes, terminals), or on a descriptor whose kind could not be
    /// told (`stat::IO_UNCLASSIFIED` counts those calls).
    pub const READ: usize = 0;
    /// write, pwrite64, writev, pwritev, pwritev2 likewise.
    pub const WRITE: usize = 1;
    /// recvfrom, recvmsg (always sockets).
    pub const RECV: usize = 2;
    /// sendto, sendmsg (always sockets).
    pub const SEND: usize = 3;
    /// The read family on a socket.
    pub const READ_SOCKET: usize = 4;
    /// The write family on a socket.
    pub const WRITE_SOCKET: usize = 5;
    pub const COUNT: usize = 6;
}

/// The value of the `COUNTERS` map: two halves selected by the parity of the
/// CPU's current flush epoch. Once every CPU has been flushed into epoch
/// E+1, the half of epoch E receives no more time, so the loader reads it
/// at leisure and the sample is exact at the flush instants no matter how
/// long the read takes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochCounters {
    pub half: [Counters; 2],
}

/// What the scheduler tracepoint remembers about the thread running on a CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSlot {
    /// Thread id that was switched in (or flushed) last on this CPU.
    pub tid: u32,
    /// `SLOT_*` flags.
    pub flags: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) since which `tid` has run uncredited.
    pub start_ns: u64,
    /// The flush epoch this CPU is in; counters go to `half[epoch & 1]`.
    pub epoch: u64,
    /// `bpf_ktime_get_ns()` of the last flush on this CPU: the boundary of
    /// the loader's window on this CPU.
    pub flushed_ns: u64,
    /// Per epoch parity: the last epoch of that parity in which a tracked
    /// thread ran on this CPU (a switch-out after a flush must not hide that
    /// the CPU was used in the epoch before).
    pub used_epoch: [u64; 2],
    /// Nanoseconds flushes credited to `tid` during its current stint.
    pub credited_ns: u64,
    /// `tid`'s process if it is tracked (known from the thread map at
    /// switch-in, or checked by a flush), else 0: spares the hot paths a
    /// hash lookup.
    pub tracked_tgid: u32,
    /// 1 while this CPU holds something of its epoch that only a flush
    /// here settles: a tracked thread running (`tracked_tgid`), or counts
    /// in `acc`. Set (with a full barrier, then the loader's `EPOCH`
    /// adopted) before anything is counted here, cleared by the flush. The
    /// loader flushes only CPUs where it is 1: a CPU where no tracked
    /// thread ran since its last flush needs no interrupt.
    pub pending: u32,
    /// Scheduler counts of process `acc_tgid` on this CPU in the current
    /// epoch, not yet added to its `COUNTERS` entry: while one process's
    /// threads follow each other on a CPU (a busy server), switches cost no
    /// counter-map lookup. Added to the map when a thread of another
    /// process is counted here, and by every flush before the epoch moves on.
    pub acc: SchedCounts,
    pub acc_tgid: u32,
    /// 1 if `acc` holds anything.
    pub acc_dirty: u32,
    /// The target of `claim`'s locked add (its value means nothing).
    pub fence: u64,
    /// The CPU's run-queue time lost to interrupts and the hypervisor
    /// (`rq.clock - rq.clock_task`, see `Config::rq_clocks`) as of
    /// `start_ns`; `LOST_UNKNOWN` where it could not be read.
    pub start_lost_ns: u64,
    /// CLOCK_MONOTONIC less the run queue's clock (`rq.clock`, the
    /// scheduler's clock, which it updates at a switch), measured at a
    /// switch-in of `offset_epoch`: a switch-in in the same epoch takes its
    /// `start_ns` from the queue's clock plus this, a plain load, instead of
    /// reading the clock (see `switched_in` in the kernel side).
    pub clock_offset_ns: u64,
    /// The epoch `clock_offset_ns` was measured in.
    pub offset_epoch: u64,
    /// How often it was measured in that epoch (the smallest is kept).
    pub offset_samples: u32,
    pub _pad: u32,
}

/// `RunSlot::start_lost_ns` when the run queue's clocks were not read.
pub const LOST_UNKNOWN: u64 = u64::MAX;

/// The scheduler's part of [`Counters`], accumulated per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedCounts {
    pub on_cpu_ns: u64,
    pub runq_wait_ns: u64,
    pub runq_waits: u64,
    pub switches_voluntary: u64,
    pub switches_involuntary: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub faults_minor: u64,
    pub faults_major: u64,
}

/// `RunSlot::flags`: the slot describes the running thread.
pub const SLOT_VALID: u32 = 1;

impl RunSlot {
    /// The slot saw thread `tid` switched in (or flushed) and describes it.
    #[inline(always)]
    pub fn holds(&self, tid: u32) -> bool {
        self.flags & SLOT_VALID != 0 && self.tid == tid
    }
}

/// A thread of a tracked process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// Its process.
    pub tgid: u32,
    /// `THREAD_*` flags.
    pub flags: u32,
    /// Its `se.sum_exec_runtime` when it was last switched out.
    pub sum_exec_ns: u64,
    /// Its `sched_info.run_delay` as last credited (at switch-out or flush).
    pub run_delay_ns: u64,
    /// Its `sched_info.pcount` (switch-ins) as last credited.
    pub pcount: u64,
    /// Its `utime` and `stime` (ns) as last credited.
    pub utime_ns: u64,
    pub stime_ns: u64,
    /// Its `min_flt` and `maj_flt` as last credited (known with the ticks).
    pub min_flt: u64,
    pub maj_flt: u64,
    /// `--threads`: what it did, per epoch parity of the CPU it did it on
    /// (cumulative, as the process counters).
    pub half: [ThreadCounts; 2],
    /// `--threads`: the epoch of its last switch-out once it is dead
    /// (`THREAD_DEAD`); the loader removes the entry when that is read.
    pub dead_epoch: u64,
    /// `--threads`: its name at its last switch-out, once it is dead.
    pub comm: [u8; COMM_LEN],
    /// Its kernel task (`task_struct` address; 0 until the kernel side
    /// has seen it, for a thread the loader seeded): which thread the entry
    /// is, whatever id it is under. A thread exec exchanges two threads'
    /// ids and the kernel side their entries; the dead main thread's last
    /// switch-out can come between the two, under the exec'ing thread's
    /// old id, and must not be settled against that thread's entry.
    pub task: u64,
}

/// One thread's counts (`--threads`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadCounts {
    pub on_cpu_ns: u64,
    pub runq_wait_ns: u64,
    pub switches_voluntary: u64,
    pub switches_involuntary: u64,
    pub user_ns: u64,
    pub system_ns: u64,
}

/// `ThreadState::flags`: the thread is dead; its entry waits for the
/// loader's last read (`--threads`).
pub const THREAD_DEAD: u32 = 16;

/// `ThreadState::flags`: every baseline is known.
pub const THREAD_SUM_VALID: u32 = 1;

/// `ThreadState::flags`: `utime_ns`, `stime_ns`, `min_flt` and `maj_flt`
/// are known (set by a flush for a seeded thread whose `sum_exec_ns` is not
/// known yet).
pub const THREAD_TICKS_VALID: u32 = 4;

/// `ThreadState::flags` with which `utime_ns` and `stime_ns` are known.
pub const THREAD_TICKS_KNOWN: u32 = THREAD_SUM_VALID | THREAD_TICKS_VALID;

/// `ThreadState::flags`: `min_flt` and `maj_flt` are known (a thread
/// seeded by the loader from its /proc stat).
pub const THREAD_FAULTS_VALID: u32 = 8;

/// `ThreadState::flags` with which `min_flt` and `maj_flt` are known.
pub const THREAD_FAULTS_KNOWN: u32 = THREAD_TICKS_KNOWN | THREAD_FAULTS_VALID;

/// `ThreadState::flags`: `run_delay_ns` and `pcount` are known (a thread
/// that existed when the recording began, seeded from its schedstat), its
/// `sum_exec_ns` is not yet.
pub const THREAD_WAIT_VALID: u32 = 2;

/// `ThreadState::flags` with which `run_delay_ns` and `pcount` are known.
pub const THREAD_WAIT_KNOWN: u32 = THREAD_SUM_VALID | THREAD_WAIT_VALID;

/// Thread marks per `THREAD_MARKS` array element (one byte per thread id).
pub const MARK_CHUNK: usize = 64;

/// A process in the tracked set.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// The tgid that forked it; 0 for a target given by the user.
    pub parent_tgid: u32,
    /// `TRACKED_EXITED` once the whole thread group has exited.
    pub flags: u32,
}

/// `Tracked::flags`: the last thread of the process has exited; its counters
/// are final once the loader has read them one more time.
pub const TRACKED_EXITED: u32 = 1;

/// `Tracked::flags`: the process was moved out of the target cgroup
/// (`--cgroup`); it counts no more, and its counters are final once the
/// loader has read them one more time.
pub const TRACKED_LEFT: u32 = 2;

/// Indexes into the per-CPU `STATS` array: things that went wrong in the kernel.
pub mod stat {
    /// A new process could not be added to the tracked set (map full).
    pub const TRACKED_INSERT_FAILED: u32 = 0;
    /// A counters entry could not be created (map full).
    pub const COUNTERS_INSERT_FAILED: u32 = 1;
    /// A thread could not be added to the thread map (map full): its
    /// run-queue wait is not counted.
    pub const THREAD_INSERT_FAILED: u32 = 2;
    /// A tracked thread was switched out on a CPU whose slot did not show it
    /// switched in, and its previous `sum_exec_runtime` was unknown: its
    /// stint is not counted.
    pub const STINT_UNKNOWN: u32 = 3;
    /// A flush found a CPU whose slot did not match the running thread (a
    /// missed sched_switch): that thread's time until then is not counted.
    pub const FLUSH_RESYNC: u32 = 4;
    /// An event could not be put into the `EVENTS` ring buffer (full).
    pub const EVENTS_LOST: u32 = 5;
    /// A read/write-family call whose descriptor's kind could not be read
    /// (closed meanwhile, or no syscall arguments on this architecture): it
    /// is counted as a non-socket call.
    pub const IO_UNCLASSIFIED: u32 = 6;
    /// Number of entries in the array.
    pub const COUNT: u32 = 7;
    /// Names as used in column names.
    pub const NAMES: [&str; COUNT as usize] = [
        "tracked_insert_failed",
        "counters_insert_failed",
        "thread_insert_failed",
        "stint_unknown",
        "flush_resync",
        "events_lost",
        "io_unclassified",
    ];
}

/// Load-time settings, written into the BPF object's read-only data.
///
/// Layouts differ between kernels; the loader reads `task_struct` offsets
/// from the kernel's BTF and tracepoint field offsets from tracefs `format`
/// files, so nothing here is hard-coded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Byte offset of `task_struct.pid` (the thread id).
    pub task_pid: u32,
    /// Byte offset of `task_struct.se.sum_exec_runtime`.
    pub task_sum_exec_runtime: u32,
    /// `sys_exit_*` tracepoints: offset of `ret` (a long; the same in every
    /// syscall's format).
    pub sys_exit_ret: u32,
    /// 1 when the `sched_process_exit` raw tracepoint passes `group_dead`
    /// as its second argument (6.16 on); else the group is dead when
    /// `task->signal->live` is 0 at the tracepoint (do_exit decrements it
    /// just before, on every kernel version).
    pub exit_has_group_dead: u32,
    /// Byte offsets of `task_struct.signal` (a pointer) and
    /// `signal_struct.live` (an atomic_t: its int counter).
    pub task_signal: u32,
    pub signal_live: u32,
    /// 1: new child processes of tracked processes are tracked too.
    pub follow_children: u32,
    /// Byte offset of `task_struct.tgid`.
    pub task_tgid: u32,
    /// Byte offset of `task_struct.real_parent` (a pointer).
    pub task_real_parent: u32,
    /// Byte offset of `task_struct.exit_code` (wait status encoding).
    pub task_exit_code: u32,
    /// Byte offsets of `task_struct.sched_info.run_delay` and `.pcount`
    /// (the kernel's run-queue delay and switch-in count, as in
    /// /proc/<pid>/schedstat); `has_sched_info` is 0 on a kernel without
    /// them (run-queue wait is then missing).
    pub task_run_delay: u32,
    pub task_pcount: u32,
    pub has_sched_info: u32,
    /// Byte offsets of `task_struct.utime` and `.stime` (ns of ticks
    /// charged to user and system mode).
    pub task_utime: u32,
    pub task_stime: u32,
    /// Byte offsets of `task_struct.min_flt` and `.maj_flt` (the thread's
    /// page faults).
    pub task_min_flt: u32,
    pub task_maj_flt: u32,
    /// 1: a process whose new program's comm equals `comm` starts being
    /// tracked at its exec (`--comm`).
    pub match_comm: u32,
    /// `oom/mark_victim` tracepoint: offset of `pid` (the victim task's
    /// id, a thread of the process the OOM killer ends).
    pub oom_victim_pid: u32,
    /// 1: each run-queue wait of a tracked thread goes into `RUNQ_HIST`
    /// (`--runq-latency`).
    pub runq_hist: u32,
    /// 1: each tracked thread's own counts are kept (`--threads`).
    pub threads: u32,
    /// Byte offset of `task_struct.comm` (`--threads`: each thread's name at its switch-outs).
    pub task_comm: u32,
    /// 1: the offsets from a task to its CPU's run queue
    /// (`task_struct.se.cfs_rq`, `cfs_rq.rq`: set for a task of any
    /// scheduling class where fair group scheduling is built in) and of
    /// the queue's `clock` and `clock_task` are known. `clock_task` is what
    /// `sum_exec_runtime` advances by; it leaves out the time the kernel
    /// accounts to interrupts (IRQ_TIME_ACCOUNTING) and to the hypervisor
    /// (steal time, PARAVIRT_TIME_ACCOUNTING), so a flush credits a running
    /// thread the wall time since its switch-in less the growth of
    /// `clock - clock_task` meanwhile.
    pub rq_clocks: u32,
    pub task_cfs_rq: u32,
    pub cfs_rq_rq: u32,
    pub rq_clock: u32,
    pub rq_clock_task: u32,
    /// The comm to match, NUL-padded (the kernel's comm is at most 15 bytes).
    pub comm: [u8; COMM_LEN],
}

/// Run-queue latency buckets per octave, as a power of two: 8 sub-buckets,
/// each at most 12.5 % wide (relative to its lower edge).
pub const RUNQ_SUB_BITS: u32 = 3;
/// Buckets of the run-queue latency histogram (every u64 of ns has one).
pub const RUNQ_BUCKETS: usize = 64 << RUNQ_SUB_BITS;

/// The histogram bucket of a wait of `ns`: below 8 ns one per ns, above
/// that 8 per octave.
#[inline(always)]
pub fn runq_bucket(ns: u64) -> usize {
    let sub = 1u64 << RUNQ_SUB_BITS;
    if ns < sub {
        return ns as usize;
    }
    // The highest set bit by halving, not leading_zeros: the BPF verifier
    // then knows it is below 64 on every path, and so the index below 512.
    let (mut msb, mut v) = (0u32, ns);
    for shift in [32u32, 16, 8, 4, 2, 1] {
        if v >> shift != 0 {
            v >>= shift;
            msb += shift;
        }
    }
    ((msb << RUNQ_SUB_BITS) as usize) | ((ns >> (msb - RUNQ_SUB_BITS)) & (sub - 1)) as usize
}

/// The [lower, upper) edges in ns of bucket `i`. Buckets 8 to 23 (octaves
/// below 8 ns, which have a bucket per ns instead) hold nothing: empty.
pub fn runq_bucket_bounds(i: usize) -> (u64, u64) {
    let sub = 1usize << RUNQ_SUB_BITS;
    if i < sub {
        return (i as u64, i as u64 + 1);
    }
    let (msb, k) = ((i >> RUNQ_SUB_BITS) as u32, (i & (sub - 1)) as u64);
    if msb < RUNQ_SUB_BITS {
        return (sub as u64, sub as u64);
    }
    let shift = msb - RUNQ_SUB_BITS;
    let lower = (sub as u64 + k) << shift;
    (lower, lower.saturating_add(1 << shift))
}

/// Per CPU: the run-queue waits of the tracked tree, per epoch parity
/// (as the counters): cumulative counts per bucket, and the longest wait of
/// the epoch `max_epoch` names.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunqHist {
    pub count: [[u64; RUNQ_BUCKETS]; 2],
    pub max_ns: [u64; 2],
    pub max_epoch: [u64; 2],
    /// Waits that could not be told apart (more than one between two
    /// readings of a thread): counted, not in any bucket.
    pub unresolved: [u64; 2],
}

impl Default for RunqHist {
    fn default() -> Self {
        RunqHist { count: [[0; RUNQ_BUCKETS]; 2], max_ns: [0; 2], max_epoch: [0; 2], unresolved: [0; 2] }
    }
}

/// Byte offsets, from the kernel's BTF, for walking from a task to its open
/// files (current -> files -> fdt -> fd[n] -> f_inode -> i_mode: is a
/// read/write-family call's descriptor a socket?) and from a socket file to
/// its socket's family, protocol and state (the census). A global of its
/// own (`FILES_SYMBOL`), so that programs that copy `Config` onto their
/// small stack do not copy these too.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileOffsets {
    /// 1: the syscall exit programs read the descriptor's kind.
    pub classify_io: u32,
    /// 1: the socket census has its offsets (the file-to-socket part).
    pub census: u32,
    /// `pt_regs` member holding a syscall's first argument at its exit
    /// (x86-64 `di`, arm64 `orig_x0`).
    pub regs_arg0: u32,
    /// `task_struct.files`, `files_struct.fdt`, `fdtable.max_fds`, `fdtable.fd`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    /// `file.f_inode`, `file.private_data` (a socket file's `struct socket`).
    pub file_inode: u32,
    pub file_private: u32,
    /// `inode.i_mode` (umode_t), `inode.i_ino` (unsigned long).
    pub inode_mode: u32,
    pub inode_ino: u32,
    /// `socket.sk`; `sock.__sk_common.skc_family` (u16),
    /// `.skc_state` (u8), `sock.sk_protocol` (u16).
    pub socket_sk: u32,
    pub sk_family: u32,
    pub sk_state: u32,
    pub sk_protocol: u32,
    /// `task_struct.__state` (unsigned int) and `.exit_state` (int), for
    /// the thread-state census.
    pub task_state: u32,
    pub task_exit_state: u32,
    /// `task_struct.group_leader`: the census walks a thread's file table
    /// only where it is not its leader's (as the kernel's `task_file`
    /// iterator does).
    pub task_group_leader: u32,
    /// 1: the memory iterator has its offsets: `task_struct.mm`,
    /// `mm_struct.hiwater_rss`, and where the value of the mm's counter 0
    /// (`MM_FILEPAGES`) lies and how far apart the counters are (an
    /// `atomic_long_t` array in `mm_rss_stat` up to Linux 6.1, an array of
    /// `percpu_counter`, whose `count` /proc reads, from 6.2).
    pub memory: u32,
    pub task_mm: u32,
    pub mm_hiwater_rss: u32,
    pub mm_counter0: u32,
    pub mm_counter_stride: u32,
    /// 1: the counters are `percpu_counter`s (6.2 on): the value is `count`
    /// plus each online CPU's part, the `s32` at `counters` (a per-CPU
    /// pointer) plus that CPU's per-CPU offset (`CPU_OFFSETS`). Offsets
    /// within a counter of its lock word and its `counters` pointer, from
    /// the counter's `count` (signed, as `i32` bits).
    pub mm_percpu: u32,
    pub pc_lock_from_count: u32,
    pub pc_counters_from_count: u32,
    /// CPU ids the iterator sums (the possible ones, at most
    /// `PERCPU_MAX_CPUS`).
    pub nr_cpus: u32,
    /// For `messer_cpu_offset`: the distances (as `i32` bits) from a CPU's
    /// run queue (`runqueues`) to its `this_cpu_off` and `cpu_number`, the
    /// per-CPU variables' offsets in BTF's `.data..percpu` section.
    pub rq_to_this_cpu_off: u32,
    pub rq_to_cpu_number: u32,
    /// `task_struct.signal` and, in `signal_struct`, the soft limit on open
    /// descriptors (`rlim[RLIMIT_NOFILE].rlim_cur`); `nofile` 1: known.
    pub nofile: u32,
    pub task_signal: u32,
    pub signal_nofile: u32,
    /// 1: the process iterator has the offsets for what the main thread's
    /// /proc/<pid>/task/<pid>/stat prints (with `task_mm`, `mm_counter0`,
    /// `mm_counter_stride` and Config's `task_tgid`, `task_real_parent`,
    /// `task_comm`, `task_min_flt`, `task_maj_flt`, `task_signal`):
    /// `task_struct.flags`, `.start_boottime`, `.gtime`, `.delays`;
    /// `task_delay_info.blkio_delay`; `signal_struct.nr_threads`, `.cutime`,
    /// `.cstime`; `mm_struct.total_vm`.
    pub stat: u32,
    pub task_flags: u32,
    pub task_start_boottime: u32,
    pub task_gtime: u32,
    pub task_delays: u32,
    pub delays_blkio: u32,
    pub signal_nr_threads: u32,
    pub signal_cutime: u32,
    pub signal_cstime: u32,
    pub mm_total_vm: u32,
    /// 1: the process iterator sums each process's IO counters and guest
    /// time over its threads (as /proc/<pid>/io and /proc/<pid>/stat do),
    /// under `signal->stats_lock`'s sequence: the thread list
    /// (`signal_struct.thread_head`, linked through `task_struct.
    /// thread_node`), the sequence word, `signal_struct.ioac` and `.gtime`
    /// (what exited threads left), `task_struct.ioac`, and in
    /// `task_io_accounting` the fields in `IO_FIELDS` order.
    pub sums: u32,
    pub signal_thread_head: u32,
    pub task_thread_node: u32,
    pub signal_stats_seq: u32,
    pub signal_ioac: u32,
    pub signal_gtime: u32,
    pub task_ioac: u32,
    pub ioac: [u32; 7],
    /// 1: the process iterator counts each process's open descriptors as
    /// /proc/<pid>/fd's size does from 6.2 (the bits set in the file
    /// table's `open_fds` bitmap, `max_fds` of them), with `task_files`,
    /// `files_fdt`, `fdt_max_fds` and `fdtable.open_fds` (`fdt_open_fds`).
    pub fds: u32,
    pub fdt_open_fds: u32,
}

/// Threads of one process the process iterator sums over; a process with
/// more has its /proc/<pid>/io and stat read.
pub const SUM_THREADS: u32 = 4096;

/// Words of a file table's `open_fds` bitmap the process iterator counts
/// (64 descriptors each: a table of up to 1M descriptors); a process with
/// a larger table has its /proc/<pid>/fd read.
pub const FD_WORDS_MAX: u32 = 16384;

/// The CPU ids the memory iterator can sum (`CPU_OFFSETS`' size).
pub const PERCPU_MAX_CPUS: u32 = 1024;

/// What `messer_cpu_offset`, run on a CPU, finds there: its run queue's
/// address, its per-CPU offset (`this_cpu_off`) and its `cpu_number`;
/// `seen` is 1 once it ran there. The loader checks every CPU's record
/// before the memory iterator sums with it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuOffset {
    pub rq: u64,
    pub offset: u64,
    pub cpu_number: u32,
    pub seen: u32,
}

/// The target cgroup (`--cgroup`) and the BTF offsets for walking from a
/// task to its cgroup v2 (task -> cgroups -> dfl_cgrp) and from a cgroup
/// to its ancestor at the target's level (Linux 6.1 keeps the ancestors'
/// ids in `cgroup.ancestor_ids[]`, 6.2 on pointers in `cgroup.ancestors[]`,
/// whose `kn->id` is the id). A global of its own (`CGROUP_SYMBOL`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupTarget {
    /// 1: the tracked set is the processes in the cgroup and below it.
    pub enabled: u32,
    /// The target cgroup's level (the root is 0).
    pub level: u32,
    /// The target cgroup's id (its directory's inode number).
    pub id: u64,
    /// `task_struct.cgroups`, `css_set.dfl_cgrp`, `cgroup.level`.
    pub task_cgroups: u32,
    pub cset_dfl_cgrp: u32,
    pub cgrp_level: u32,
    /// `cgroup.ancestor_ids` (u64s, `ancestors_are_ids` = 1) or
    /// `cgroup.ancestors` (pointers).
    pub cgrp_ancestors: u32,
    pub ancestors_are_ids: u32,
    /// `cgroup.kn`, `kernfs_node.id`.
    pub cgrp_kn: u32,
    pub kn_id: u32,
    /// `signal_struct.thread_head` and `task_struct.thread_node` (the list
    /// of a process's threads), to adopt every thread of a process moved in.
    pub signal_thread_head: u32,
    pub task_thread_node: u32,
    pub _pad: u32,
}

/// Threads of a process moved into the target cgroup that the kernel side
/// adopts at the move; the loader seeds any further ones at its next read.
pub const JOIN_THREADS: u32 = 32;

/// Name of the global that holds [`CgroupTarget`] in the BPF object.
pub const CGROUP_SYMBOL: &str = "MESSER_CGROUP";

/// What the census iterator reports: one record for each thread of a
/// tracked process (`CENSUS_THREAD`: its raw state words, turned into
/// /proc's letters by the loader with the kernel's own rule,
/// `task_state_index`), and one for each descriptor of a tracked process
/// naming a TCP or UDP socket over IPv4 or IPv6 (`CENSUS_SOCKET`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CensusRecord {
    /// `CENSUS_THREAD` or `CENSUS_SOCKET`.
    pub kind: u32,
    /// The process (the thread's, or the one holding the socket).
    pub tgid: u32,
    /// A thread's `__state`; a socket's state (`skc_state`;
    /// TCP_ESTABLISHED is 1).
    pub state: u32,
    /// A thread's `exit_state` (EXIT_ZOMBIE, EXIT_DEAD or 0); a socket's
    /// protocol (IPPROTO_TCP or IPPROTO_UDP).
    pub detail: u32,
    /// A socket's inode number (as in `socket:[N]`: one socket open in
    /// several descriptors or processes is counted once); 0 for a thread.
    pub ino: u64,
}

/// `CensusRecord::kind` values: a thread, a socket, and the mark that the
/// walk of a task's file table stopped short (more than
/// `CENSUS_SOCKETS_MAX` sockets, a table over `FD_WORDS_MAX` words, a
/// failed read), so that the loader counts sockets another way.
pub const CENSUS_THREAD: u32 = 1;
pub const CENSUS_SOCKET: u32 = 2;
pub const CENSUS_INCOMPLETE: u32 = 3;

/// The sockets the census reports for one task at most: its records (and
/// the thread's) must fit the iterator's buffer of 8 pages of 4 KiB.
pub const CENSUS_SOCKETS_MAX: u32 = 1300;

/// What the process iterator reports for each tracked process (its thread
/// group leader): the figures of its main thread's stat
/// (/proc/<pid>/task/<pid>/stat), where `stat_known`, and where `whole`
/// those /proc/<pid>/status prints as VmHWM and VmSwap, by the kernel's own
/// rule (`task_mem`), in pages.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessRecord {
    pub tgid: u32,
    /// 1: the memory counters are whole; 0: the process has no address
    /// space now (a zombie leader), a per-CPU sum did not settle (its
    /// counter was held or moved during each of the tries) or a CPU's part
    /// could not be read: the loader reads /proc for its memory.
    pub whole: u32,
    /// `mm_struct.hiwater_rss`: the RSS high-water mark as of the last
    /// time the kernel updated it (it lags: VmHWM is its max with the RSS).
    pub hiwater_rss: u64,
    /// The mm's counters in `MM_*` order (`MM_FILEPAGES`, `MM_ANONPAGES`,
    /// `MM_SWAPENTS`, `MM_SHMEMPAGES`), signed as the kernel keeps them:
    /// whole sums (with each CPU's part from 6.2).
    pub counters: [i64; 4],
    /// The same counters as stat reads them (`get_mm_counter`): from 6.2
    /// the per-CPU counters' shared `count` only; up to 6.1 as `counters`.
    /// 0 without an address space, as stat prints it.
    pub counts: [i64; 4],
    /// `mm_struct.total_vm` (pages; 0 without an address space).
    pub total_vm: u64,
    /// The process's soft `RLIMIT_NOFILE` (`signal->rlim[].rlim_cur`, what
    /// prlimit reads; RLIM_INFINITY is u64::MAX), where `nofile_known`.
    pub nofile: u64,
    pub nofile_known: u32,
    /// 1: every field below was read.
    pub stat_known: u32,
    /// 1: `io` and `gtime_all` were summed over the threads with no thread
    /// exiting meanwhile (`signal->stats_lock`'s sequence even and
    /// unchanged), over at most `SUM_THREADS` threads.
    pub sums_known: u32,
    /// `real_parent->tgid`.
    pub ppid: u32,
    /// `__state` and `exit_state`, for the state letter.
    pub state: u32,
    pub exit_state: u32,
    /// `task_struct.flags` (PF_*).
    pub flags: u32,
    /// `signal->nr_threads`.
    pub nr_threads: u32,
    /// `start_boottime` (ns since boot, suspend included).
    pub start_boottime: u64,
    /// `signal->cutime`, `signal->cstime` (ns: reaped children's times).
    pub cutime: u64,
    pub cstime: u64,
    /// `delays->blkio_delay` (ns; 0 without delay accounting).
    pub blkio_delay: u64,
    /// The main thread's `min_flt` and `maj_flt`.
    pub min_flt: u64,
    pub maj_flt: u64,
    pub comm: [u8; COMM_LEN],
    /// The process's IO counters (/proc/<pid>/io's, in its order: rchar,
    /// wchar, syscr, syscw, read_bytes, write_bytes, cancelled_write_bytes)
    /// and guest time (ns), each `signal`'s share of exited threads plus
    /// every thread's own, where `sums_known`.
    pub io: [u64; 7],
    pub gtime_all: u64,
    /// The process's open descriptors (bits set in its file table's
    /// `open_fds`), where `fds_known`; 0 there without a file table.
    pub num_fds: u32,
    pub fds_known: u32,
}

/// `i_mode` file-type bits and the socket type (S_IFMT, S_IFSOCK).
pub const S_IFMT: u16 = 0o170000;
pub const S_IFSOCK: u16 = 0o140000;

/// `CensusRecord::detail` values of a socket, and the TCP state that is a connection.
pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const TCP_ESTABLISHED: u16 = 1;
/// Address families of IP sockets.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// Size of the kernel's `task_struct.comm` (TASK_COMM_LEN), NUL included.
pub const COMM_LEN: usize = 16;

/// A process event of the tracked tree, sent through the `EVENTS` ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when it happened.
    pub time_ns: u64,
    /// `event::*`.
    pub kind: u32,
    /// The process (tgid) it is about.
    pub pid: u32,
    /// Its parent process (tgid of `real_parent`; the forking one for a fork).
    pub ppid: u32,
    /// Exit: `task_struct.exit_code` (exit code << 8 | signal); else 0.
    pub status: u32,
    /// Its comm (after an exec: the new program's).
    pub comm: [u8; COMM_LEN],
}

/// `Event::kind` values.
pub mod event {
    /// A tracked process forked a new (tracked) process.
    pub const FORK: u32 = 1;
    /// A tracked process ran a new program.
    pub const EXEC: u32 = 2;
    /// The last thread of a tracked process exited.
    pub const EXIT: u32 = 3;
    /// A process not tracked before ran a program whose comm matches
    /// `Config::comm`; it is tracked from this exec on.
    pub const MATCH: u32 = 4;
    /// The OOM killer chose a tracked process as its victim (`mark_victim`).
    pub const OOM_KILL: u32 = 5;
    /// A process entered the target cgroup (moved in, or forked into it
    /// by a process outside): tracked from then on.
    pub const JOIN: u32 = 6;
    /// A tracked process was moved out of the target cgroup.
    pub const LEAVE: u32 = 7;
}

/// Name of the global that holds [`Config`] in the BPF object.
pub const CONFIG_SYMBOL: &str = "MESSER_CONFIG";

/// Name of the global that holds [`FileOffsets`] in the BPF object.
pub const FILES_SYMBOL: &str = "MESSER_FILES";

/// `clone(2)` flag that makes a new task a thread of its parent's process.
pub const CLONE_THREAD: u64 = 0x0001_0000;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::Counters {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::EpochCounters {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::ThreadState {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::RunSlot {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::Tracked {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::Config {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::FileOffsets {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::CgroupTarget {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::RunqHist {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::CensusRecord {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::ProcessRecord {}
    // SAFETY: #[repr(C)], integers only, no padding holes.
    unsafe impl aya::Pod for super::CpuOffset {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runq_buckets_cover_every_wait_and_are_at_most_an_eighth_wide() {
        for ns in [0u64, 1, 7, 8, 9, 15, 16, 1000, 1_234_567, 999_999_999_999, u64::MAX] {
            let i = runq_bucket(ns);
            assert!(i < RUNQ_BUCKETS, "{ns}");
            let (lo, hi) = runq_bucket_bounds(i);
            assert!(lo <= ns && (ns < hi || hi == u64::MAX), "{ns} not in [{lo}, {hi})");
            if lo >= 8 {
                assert!((hi - lo) as f64 / lo as f64 <= 0.125 + 1e-12, "{ns}: [{lo}, {hi})");
            }
        }
        // Contiguous: 0..8 one per ns, then 24.. eight per octave.
        for i in (0..7).chain(24..RUNQ_BUCKETS - 1) {
            assert_eq!(runq_bucket_bounds(i).1, runq_bucket_bounds(i + 1).0, "bucket {i}");
        }
        assert_eq!(runq_bucket_bounds(7).1, runq_bucket_bounds(24).0);
        assert_eq!(runq_bucket_bounds(12), (8, 8));
    }
}
