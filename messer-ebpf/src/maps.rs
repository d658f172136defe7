//! The maps shared with the loader, and the load-time configuration.
//!
//! Map sizes here are placeholders: the loader sets them at load time.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, PerCpuHashMap},
};
use messer_common::{Config, ProcCounters, RunSlot, Tracked, stat};

/// The tracked set: tgid -> what we know about it.
#[map]
pub static TRACKED: HashMap<u32, Tracked> = HashMap::with_max_entries(1, 0);

/// Per-CPU counters per tracked tgid.
#[map]
pub static COUNTERS: PerCpuHashMap<u32, ProcCounters> = PerCpuHashMap::with_max_entries(1, 0);

/// Per CPU: the thread running there and since when it is uncredited.
#[map]
pub static RUNNING: PerCpuArray<RunSlot> = PerCpuArray::with_max_entries(1, 0);

/// Per-CPU error counters, indexed by `messer_common::stat`.
#[map]
pub static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Filled in by the loader (tracefs offsets, options) before loading.
#[unsafe(no_mangle)]
static MESSER_CONFIG: Config = Config {
    switch_next_pid: 0,
    newtask_pid: 0,
    newtask_clone_flags: 0,
    exit_pid: 0,
    exit_group_dead: u32::MAX,
    follow_children: 0,
};

/// The configuration as the loader wrote it.
#[inline(always)]
pub fn config() -> Config {
    // SAFETY: a plain read of a static; volatile so that the compiler does not
    // fold in the placeholder values above.
    unsafe { core::ptr::read_volatile(&MESSER_CONFIG) }
}

/// Counts one failure of kind `which`.
#[inline(always)]
pub fn bump(which: u32) {
    if let Some(p) = STATS.get_ptr_mut(which) {
        // SAFETY: per-CPU slot, only this CPU writes it while we run.
        unsafe { *p += 1 }
    }
}

/// Is `tgid` in the tracked set?
#[inline(always)]
pub fn is_tracked(tgid: u32) -> bool {
    TRACKED.get_ptr(tgid).is_some()
}

/// Adds `ns` of on-CPU time to `tgid`'s counters on this CPU.
#[inline(always)]
pub fn credit_cpu(tgid: u32, ns: u64) {
    match COUNTERS.get_ptr_mut(tgid) {
        // SAFETY: this CPU's copy; sched_switch and the flush both run with
        // interrupts off, so no other writer of this field can interleave.
        Some(c) => unsafe { (*c).on_cpu_ns += ns },
        None => {
            let fresh = ProcCounters { on_cpu_ns: ns };
            if COUNTERS.insert(tgid, fresh, 0).is_err() {
                bump(stat::COUNTERS_INSERT_FAILED);
            }
        }
    }
}
