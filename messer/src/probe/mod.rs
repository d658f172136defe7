//! Probes read the tracked processes' cumulative counters and return what
//! changed since their previous read.

pub mod delta;
pub mod ebpf;
pub mod event;
pub mod measure;
pub mod procfs;

pub use event::{EventKind, ProcEvent};
pub use measure::Measure;

use crate::base::clock;
use crate::base::table::Column;

/// CPU time gained by the tracked tree during one window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuWindow {
    /// On-CPU nanoseconds. Signed: the eBPF probe settles a thread's stint
    /// to the kernel's accounting at switch-out, and a settlement can be
    /// slightly below what flushes credited before (see README).
    pub on_cpu_ns: i64,
    /// The kernel's tick-based user time (for the split only: clock ticks
    /// from /proc in procfs mode, ns of ticks from the kernel side in ebpf
    /// mode).
    pub user_ticks: u64,
    /// Likewise for system time.
    pub system_ticks: u64,
}

/// One read of a probe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// CLOCK_MONOTONIC ns of the instant the counters refer to (the middle of
    /// the read).
    pub mono_ns: u64,
    /// What the tree gained since the previous read (nothing on the first).
    pub cpu: CpuWindow,
    /// Processes of the tree alive at this read.
    pub num_processes: u32,
    /// Values of the probe's `columns()`, in order.
    pub extra: Vec<Measure>,
    /// The tree's processes alive at this read, each with its own window.
    pub processes: Vec<ProcessWindow>,
    /// Whether anything was tracked in this window (a process alive at the
    /// read, or one that exited during the window). Without, the process
    /// figures of the sample are missing, not zero.
    pub present: bool,
    /// Fork, exec and exit events of the tree since the previous read.
    pub events: Vec<ProcEvent>,
    /// `--runq-latency`: the window's run-queue waits, (lower ns, upper
    /// ns, waits) per bucket that has any.
    pub runq_hist: Vec<(u64, u64, u64)>,
    /// `--threads`: each thread's part of the window.
    pub threads: Vec<ThreadWindow>,
}

/// One thread's part of a reading (`--threads`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadWindow {
    pub pid: i32,
    pub tid: i32,
    /// Its name (the thread's comm).
    pub comm: String,
    /// On-CPU ns in the window, and the ticks' user/system split of it.
    pub cpu: CpuWindow,
    pub runq_wait_ns: u64,
    /// None where not known (procfs mode: the first window a thread is seen).
    pub switches_voluntary: Option<u64>,
    pub switches_involuntary: Option<u64>,
}

/// One process's part of a reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessWindow {
    pub pid: i32,
    pub ppid: i32,
    /// Start time in seconds since the epoch (boot time + start ticks).
    pub start_unixtime: f64,
    pub comm: String,
    pub cpu: CpuWindow,
    pub rss_bytes: f64,
    pub num_threads: f64,
    /// Bytes read and written by read/write-family syscalls in the window
    /// (ebpf: syscall returns; procfs: rchar/wchar); NaN if unknown.
    pub read_bytes: f64,
    pub write_bytes: f64,
    /// Minor and major page faults in the window; NaN if unknown.
    pub faults_minor: f64,
    pub faults_major: f64,
    /// What /proc (or the census) told of it besides.
    pub extras: ProcessExtras,
}

/// A process's figures from the tree's /proc reads and the census; NaN
/// where unknown (by default).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessExtras {
    /// Its threads running, sleeping, disk_sleep, stopped, zombie (momentary).
    pub thread_states: [f64; 5],
    pub num_fds: f64,
    /// Its soft descriptor limit (inf: unlimited).
    pub fd_limit: f64,
    /// Bytes of cancelled writes and ns of guest time in the window.
    pub cancelled_write_bytes: f64,
    pub guest_ns: f64,
}

impl Default for ProcessExtras {
    fn default() -> Self {
        ProcessExtras {
            thread_states: [f64::NAN; 5],
            num_fds: f64::NAN,
            fd_limit: f64::NAN,
            cancelled_write_bytes: f64::NAN,
            guest_ns: f64::NAN,
        }
    }
}

/// A source of readings.
pub trait Probe {
    /// The columns this probe adds after the common ones, fixed for its life.
    fn columns(&self) -> Vec<Column> {
        Vec::new()
    }

    /// Takes the counters of this instant (the exact, quick part of a
    /// read); the next `read` completes the reading from them. Probes read
    /// on one tick are all snapped first, so that their windows end at
    /// nearly the same instant.
    fn snap(&mut self) -> Result<(), ProbeError>;

    /// Reads now (from the snapshot, if one was taken). The first call sets
    /// the baseline.
    fn read(&mut self) -> Result<Reading, ProbeError>;

    /// Starts tracking process `pid` (with its children unless
    /// `--no-children`) from now on; with `since_start`, processes of its
    /// tree that started after the previous read count from their start
    /// (a process found by a /proc scan just before a read).
    fn add_root(&mut self, pid: i32, since_start: bool) -> Result<(), ProbeError>;

    /// Stops tracking process `pid` (moved out of the target cgroup); what
    /// it did until the previous read stays counted. Probes that learn
    /// this themselves (ebpf) ignore it.
    fn drop_root(&mut self, _pid: i32) {}
}

/// What can go wrong reading a probe.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Procfs(#[from] procfs::ReadError),
    #[error(transparent)]
    Ebpf(#[from] ebpf::EbpfError),
}

/// Times a read: its instant is the middle of the time it took.
pub(crate) struct Span(u64);

impl Span {
    pub(crate) fn start() -> Self {
        Span(clock::monotonic_ns())
    }

    pub(crate) fn end(self) -> u64 {
        let end = clock::monotonic_ns();
        self.0 + (end - self.0) / 2
    }
}
