//! The census (kernel side: `messer-ebpf/src/census.rs`): each read runs
//! the two iterators once, the tree's TCP and UDP sockets from the records
//! of the one over every process's open files, its threads' states from
//! the one over every task. The memory iterator (over every task too)
//! gives each tracked process's VmHWM and VmSwap without a /proc read.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;

use aya::Ebpf;
use aya::programs::Iter;
use messer_common::{IPPROTO_TCP, MemoryRecord, SocketRecord, TCP_ESTABLISHED, ThreadRecord};

use super::EbpfError;
use super::handle::program;
use crate::probe::procfs::figures::{SocketCounts, ThreadStates};
use crate::probe::procfs::process::KernelMemory;

/// The programs' names in the BPF object and the kernel iterators they run on.
pub const SOCKETS: (&str, &str) = ("messer_sockets", "task_file");
pub const THREADS: (&str, &str) = ("messer_thread_states", "task");
pub const MEMORY: (&str, &str) = ("messer_memory", "task");

/// Loads both iterator programs (attached anew at every read).
pub fn load(bpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), EbpfError> {
    for (name, target) in [SOCKETS, THREADS] {
        let p: &mut Iter = program(bpf, name)?;
        p.load(target, btf).map_err(EbpfError::load)?;
    }
    Ok(())
}

/// Loads the memory iterator (attached anew at every read).
pub fn load_memory(bpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), EbpfError> {
    let p: &mut Iter = program(bpf, MEMORY.0)?;
    p.load(MEMORY.1, btf).map_err(EbpfError::load)
}

/// `MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES` of
/// include/linux/mm_types_task.h (one order since Linux 4.5).
const MM_SWAPENTS: usize = 2;
const RSS_COUNTERS: [usize; 3] = [0, 1, 3];

/// Memory records by process, by the kernel's `task_mem`: a counter reads
/// as 0 while negative (`get_mm_counter`), the RSS is the file, anonymous
/// and shared-memory pages, and VmHWM is the larger of the RSS and the
/// high-water mark (which the kernel updates only now and then); pages
/// of `page_size` bytes.
pub fn tally_memory(records: &[u8], page_size: u64) -> HashMap<i32, KernelMemory> {
    let mut out = HashMap::new();
    for chunk in records.chunks_exact(size_of::<MemoryRecord>()) {
        // SAFETY: a whole record's bytes; read unaligned.
        let r: MemoryRecord = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        // Not whole: this process's status is read instead.
        if r.whole == 0 {
            continue;
        }
        let counter = |i: usize| r.counters[i].max(0) as u64;
        let rss: u64 = RSS_COUNTERS.iter().map(|&i| counter(i)).sum();
        let (peak, swap) = (rss.max(r.hiwater_rss), counter(MM_SWAPENTS));
        let fd_limit = (r.nofile_known != 0).then_some(r.nofile);
        out.insert(
            r.tgid as i32,
            KernelMemory { peak_bytes: peak * page_size, swap_bytes: swap * page_size, fd_limit },
        );
    }
    out
}

/// The tracked processes' memory figures now (those whose leader has an
/// address space).
pub fn memory(bpf: &mut Ebpf, buf: &mut Vec<u8>, page_size: u64) -> Result<HashMap<i32, KernelMemory>, EbpfError> {
    run(bpf, MEMORY.0, size_of::<MemoryRecord>(), buf)?;
    let m = tally_memory(buf, page_size);
    let records = buf.len() / size_of::<MemoryRecord>();
    log::debug!("memory iterator: {records} processes, {} left to /proc/<pid>/status", records - m.len());
    Ok(m)
}

/// Counts socket records (`SocketRecord`s as the kernel side wrote them).
pub fn tally_sockets(records: &[u8]) -> SocketCounts {
    let mut seen = HashSet::new();
    let mut out = SocketCounts::default();
    for chunk in records.chunks_exact(size_of::<SocketRecord>()) {
        // SAFETY: a whole record's bytes; read unaligned.
        let r: SocketRecord = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        if seen.insert(r.ino) {
            out.ip_sockets += 1;
            if r.protocol == IPPROTO_TCP && r.state == TCP_ESTABLISHED {
                out.tcp_established += 1;
            }
        }
    }
    out
}

/// `TASK_REPORT` and `TASK_IDLE` of include/linux/sched.h, and the letters
/// /proc shows by the highest bit of the reported state (fs/proc/array.c).
const TASK_REPORT: u32 = 0x7f;
const TASK_IDLE: u32 = 0x402;
const LETTERS: [char; 8] = ['R', 'S', 'D', 'T', 't', 'X', 'Z', 'P'];

/// The /proc state letter of a thread's state words, by the kernel's
/// `task_state_index`.
pub fn letter(state: u32, exit_state: u32) -> char {
    if state == TASK_IDLE {
        return 'I';
    }
    let reported = (state | exit_state) & TASK_REPORT;
    let index = (u32::BITS - reported.leading_zeros()) as usize;
    LETTERS.get(index).copied().unwrap_or('?')
}

/// Counts thread records by process and state.
pub fn tally_threads(records: &[u8]) -> HashMap<i32, ThreadStates> {
    let mut out: HashMap<i32, ThreadStates> = HashMap::new();
    for chunk in records.chunks_exact(size_of::<ThreadRecord>()) {
        // SAFETY: a whole record's bytes; read unaligned.
        let r: ThreadRecord = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        out.entry(r.tgid as i32).or_default().add(letter(r.state, r.exit_state));
    }
    out
}

/// Runs iterator program `name` once: a new instance read to its end into
/// `buf` (which keeps its capacity), whole records of `record` bytes.
pub fn run(bpf: &mut Ebpf, name: &str, record: usize, buf: &mut Vec<u8>) -> Result<(), EbpfError> {
    let p: &mut Iter = program(bpf, name)?;
    let id = p.attach().map_err(EbpfError::map)?;
    let link = p.take_link(id).map_err(EbpfError::map)?;
    let mut file = link.into_file().map_err(EbpfError::map)?;
    buf.clear();
    file.read_to_end(buf).map_err(EbpfError::map)?;
    if !buf.len().is_multiple_of(record) {
        return Err(EbpfError::Map(format!("iterator {name} returned {} bytes, not whole records", buf.len())));
    }
    Ok(())
}

/// The tree's sockets now.
pub fn sockets(bpf: &mut Ebpf, buf: &mut Vec<u8>) -> Result<SocketCounts, EbpfError> {
    run(bpf, SOCKETS.0, size_of::<SocketRecord>(), buf)?;
    Ok(tally_sockets(buf))
}

/// The tree's threads by process and state now.
pub fn threads(bpf: &mut Ebpf, buf: &mut Vec<u8>) -> Result<HashMap<i32, ThreadStates>, EbpfError> {
    run(bpf, THREADS.0, size_of::<ThreadRecord>(), buf)?;
    Ok(tally_threads(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes<T: Copy>(r: T) -> Vec<u8> {
        // SAFETY: a plain-data record's bytes.
        unsafe { std::slice::from_raw_parts((&r as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    #[test]
    fn counts_each_socket_once_however_many_hold_it() {
        let rec = |ino, tgid, protocol, state| bytes(SocketRecord { ino, tgid, protocol, state });
        let b: Vec<u8> =
            [rec(7, 1, 6, 1), rec(7, 2, 6, 1), rec(8, 1, 6, 10), rec(9, 1, 17, 7), rec(10, 2, 6, 1)].concat();
        assert_eq!(tally_sockets(&b), SocketCounts { ip_sockets: 4, tcp_established: 2 });
        assert_eq!(tally_sockets(&[]), SocketCounts::default());
    }

    #[test]
    fn memory_follows_the_kernels_task_mem() {
        let rec = |tgid, hiwater_rss, counters| {
            bytes(MemoryRecord {
                tgid,
                whole: 1,
                hiwater_rss,
                counters,
                nofile: 64,
                nofile_known: u32::from(tgid == 1),
                _pad: 0,
            })
        };
        // RSS 10 + 20 + 5 over a stale high-water mark of 30; 7 swapped.
        // A negative counter (per-CPU parts not yet folded in) reads 0.
        let b: Vec<u8> = [rec(1, 30, [10, 20, 7, 5]), rec(2, 100, [-3, 40, -1, 0])].concat();
        let m = tally_memory(&b, 4096);
        assert_eq!(m[&1], KernelMemory { peak_bytes: 35 * 4096, swap_bytes: 7 * 4096, fd_limit: Some(64) });
        assert_eq!(m[&2], KernelMemory { peak_bytes: 100 * 4096, swap_bytes: 0, fd_limit: None });
        // A sum that did not settle leaves the process to /proc.
        let b = bytes(MemoryRecord { tgid: 3, whole: 0, hiwater_rss: 1, counters: [1; 4], ..Default::default() });
        assert!(tally_memory(&b, 4096).is_empty());
    }

    #[test]
    fn thread_states_follow_the_kernels_letters() {
        assert_eq!(letter(0, 0), 'R');
        assert_eq!(letter(1, 0), 'S');
        assert_eq!(letter(2, 0), 'D');
        assert_eq!(letter(0x402, 0), 'I');
        assert_eq!(letter(4, 0), 'T');
        assert_eq!(letter(8, 0), 't');
        // An exited thread group leader: exit_state EXIT_ZOMBIE (0x20).
        assert_eq!(letter(0x80, 0x20), 'Z');
        // TASK_KILLABLE (TASK_WAKEKILL | TASK_UNINTERRUPTIBLE): D.
        assert_eq!(letter(0x102, 0), 'D');
        let rec = |state, exit_state| bytes(ThreadRecord { tgid: 1, state, exit_state, _pad: 0 });
        let b: Vec<u8> = [rec(0, 0), rec(1, 0), rec(1, 0), rec(2, 0), rec(0x80, 0x20)].concat();
        let t = tally_threads(&b)[&1];
        assert_eq!((t.running, t.sleeping, t.disk_sleep, t.stopped, t.zombie), (1, 2, 1, 0, 1));
    }
}
