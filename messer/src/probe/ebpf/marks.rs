//! The kernel side's thread marks (`THREAD_MARKS`: one byte per thread id,
//! 1 while the thread has a `THREADS` entry), sized from pid_max and set by
//! the loader for the threads it seeds.
//!
//! The loader writes single bytes through a shared mapping of the map
//! (BPF_F_MMAPABLE) rather than updating elements: an element holds the
//! marks of 64 thread ids, and a read-modify-write from user space would
//! undo a mark the kernel side set meanwhile for a new thread.

use aya::Ebpf;
use aya::maps::Map;
use messer_common::MARK_CHUNK;

use super::EbpfError;
use super::mapping::Mapping;
use crate::probe::procfs::ProcRoot;

/// The map's name in the BPF object.
pub const MAP: &str = "THREAD_MARKS";

/// Elements the map needs to cover every thread id the kernel can hand out
/// (`/proc/sys/kernel/pid_max`; the kernel's limit if it cannot be read).
/// Ids beyond it (pid_max raised later) fall back to the hash lookup.
pub fn chunks(proc: &ProcRoot) -> u32 {
    const PID_MAX_LIMIT: u32 = 4 * 1024 * 1024;
    let pid_max = proc.read("sys/kernel/pid_max").ok().and_then(|t| t.trim().parse::<u32>().ok());
    pid_max.unwrap_or(PID_MAX_LIMIT).div_ceil(MARK_CHUNK as u32).max(1)
}

/// A shared mapping of the marks.
pub struct Marks(Mapping);

impl Marks {
    /// Maps the loaded object's marks.
    pub fn map(bpf: &Ebpf) -> Result<Self, EbpfError> {
        let Some(Map::Array(data)) = bpf.map(MAP) else {
            return Err(EbpfError::Load(format!("no array map {MAP}")));
        };
        Mapping::of(data, MAP, MARK_CHUNK).map(Self)
    }

    /// Marks thread `tid` (a byte store: marks of other threads, which the
    /// kernel side may be writing now, are left alone).
    pub fn set(&self, tid: u32) {
        self.0.store(tid as usize, 1u8);
    }
}
