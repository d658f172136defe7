//! Types shared by the BPF programs (`messer-ebpf`) and the loader (`messer`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side writes it into
//! BPF maps, the user side reads the same bytes back. With the `user` feature
//! the types implement `aya::Pod` so that aya can copy them in and out of maps.
#![no_std]

/// Counters kept per tracked process (tgid), one copy per CPU.
///
/// Per-CPU copies mean the hot path never contends across CPUs; the loader
/// sums the copies when it reads.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcCounters {
    /// Nanoseconds the process's threads spent on a CPU, credited when a thread
    /// is switched out and when the loader flushes the running thread.
    pub on_cpu_ns: u64,
}

/// What the scheduler tracepoint remembers about the thread running on a CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunSlot {
    /// Thread id that was switched in (or flushed) last on this CPU.
    pub tid: u32,
    /// 1 once `start_ns` is meaningful for `tid`.
    pub valid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) since which `tid` has run uncredited.
    pub start_ns: u64,
}

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

/// Indexes into the per-CPU `STATS` array: things that went wrong in the kernel.
pub mod stat {
    /// A new process could not be added to the tracked set (map full).
    pub const TRACKED_INSERT_FAILED: u32 = 0;
    /// A counters entry could not be created (map full).
    pub const COUNTERS_INSERT_FAILED: u32 = 1;
    /// Number of entries in the array.
    pub const COUNT: u32 = 2;
}

/// Load-time settings, written into the BPF object's read-only data.
///
/// Tracepoint field offsets differ between kernels; the loader reads them from
/// tracefs `format` files, so nothing here is hard-coded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// `sched_switch`: offset of `next_pid`.
    pub switch_next_pid: u32,
    /// `task_newtask`: offset of `pid`.
    pub newtask_pid: u32,
    /// `task_newtask`: offset of `clone_flags`.
    pub newtask_clone_flags: u32,
    /// `sched_process_exit`: offset of `pid`.
    pub exit_pid: u32,
    /// `sched_process_exit`: offset of `group_dead`, or `u32::MAX` when the
    /// kernel's tracepoint has no such field (then a leader's exit counts).
    pub exit_group_dead: u32,
    /// 1: new child processes of tracked processes are tracked too.
    pub follow_children: u32,
}

/// Name of the global that holds [`Config`] in the BPF object.
pub const CONFIG_SYMBOL: &str = "MESSER_CONFIG";

/// `clone(2)` flag that makes a new task a thread of its parent's process.
pub const CLONE_THREAD: u64 = 0x0001_0000;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] structs of integers without padding
    // holes that could leak uninitialised bytes.
    unsafe impl aya::Pod for super::ProcCounters {}
    unsafe impl aya::Pod for super::RunSlot {}
    unsafe impl aya::Pod for super::Tracked {}
    unsafe impl aya::Pod for super::Config {}
}
