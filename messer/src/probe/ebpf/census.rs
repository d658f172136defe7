//! The census (kernel side: `messer-ebpf/src/census.rs`): each read runs
//! its iterator over every task once, which reports the tree's threads'
//! states and, from the tree's file tables, its TCP and UDP sockets. The
//! process iterator (over every task too) gives each tracked process's
//! stat, VmHWM and VmSwap without a /proc read.

use std::collections::HashSet;

use crate::base::hash::FastMap as HashMap;
use std::io::Read as _;

use aya::Ebpf;
use aya::programs::Iter;
use messer_common::{
    CENSUS_INCOMPLETE, CENSUS_SOCKET, CENSUS_THREAD, CensusRecord, IPPROTO_TCP, ProcessRecord, TCP_ESTABLISHED,
};

use super::EbpfError;
use super::handle::program;
use crate::base::proc::parse::Stat;
use crate::probe::procfs::figures::{SocketCounts, ThreadStates};
use crate::probe::procfs::process::{Kernel, KernelMemory};

/// The programs' names in the BPF object and the kernel iterators they run on.
pub const CENSUS: (&str, &str) = ("messer_census", "task");
pub const SOCKETS: (&str, &str) = ("messer_sockets", "task_file");
pub const PROCESSES: (&str, &str) = ("messer_processes", "task");

/// Loads the census iterators (attached anew at every read).
pub fn load(bpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), EbpfError> {
    for (name, target) in [CENSUS, SOCKETS] {
        let p: &mut Iter = program(bpf, name)?;
        p.load(target, btf).map_err(EbpfError::load)?;
    }
    Ok(())
}

/// Loads the process iterator (attached anew at every read).
pub fn load_processes(bpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), EbpfError> {
    let p: &mut Iter = program(bpf, PROCESSES.0)?;
    p.load(PROCESSES.1, btf).map_err(EbpfError::load)
}

/// `MM_FILEPAGES`, `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES` of
/// include/linux/mm_types_task.h (one order since Linux 4.5).
const MM_SWAPENTS: usize = 2;
const RSS_COUNTERS: [usize; 3] = [0, 1, 3];

/// What the process iterator gave, by process: in `figures`, whole memory
/// counters (where `memory` was asked and they were whole), the IO
/// counters summed over the threads (where the sum settled) and the count
/// of open descriptors (where it was read); the process's stat (where
/// `stat` was asked and it was read, its guest time summed as the IO).
#[derive(Debug, Default)]
pub struct KernelProcesses {
    pub figures: HashMap<i32, Kernel>,
    pub stats: HashMap<i32, Stat>,
}

/// How to turn the records' units into /proc's: pages of `page_size`
/// bytes; `tick_ns`, the ns in one of stat's clock ticks (USER_HZ; 0 if
/// it does not divide a second, where the kernel rounds otherwise and stat
/// is not taken from the records); `boottime_offset_ns`, the boot-time
/// offset of messer's time namespace, which /proc adds to start times.
#[derive(Debug, Clone, Copy)]
pub struct Units {
    pub page_size: u64,
    pub tick_ns: u64,
    pub boottime_offset_ns: i64,
}

impl Units {
    pub fn new(page_size: u64, ticks_per_second: f64) -> Self {
        let hz = ticks_per_second as u64;
        let tick_ns = if hz > 0 && 1_000_000_000 % hz == 0 { 1_000_000_000 / hz } else { 0 };
        let offset = std::fs::read_to_string("/proc/self/timens_offsets").ok().and_then(|t| boottime_offset(&t));
        Units { page_size, tick_ns, boottime_offset_ns: offset.unwrap_or(0) }
    }
}

/// The boot-time line of a /proc/<pid>/timens_offsets text, in ns.
pub fn boottime_offset(text: &str) -> Option<i64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("boottime"))?;
    let mut parts = rest.split_whitespace().map(str::parse::<i64>);
    let (Some(Ok(s)), Some(Ok(ns))) = (parts.next(), parts.next()) else { return None };
    s.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// A counter as the kernel's `get_mm_counter` reads it: 0 while negative.
fn pages(v: i64) -> u64 {
    v.max(0) as u64
}

/// Process records (as the kernel side wrote them), by the kernel's rules.
/// Memory, by `task_mem`: the RSS is the file, anonymous and shared-memory
/// pages, and VmHWM the larger of the RSS and the high-water mark (which
/// the kernel updates only now and then). Stat, by `do_task_stat` for a
/// process, with the main thread's state, faults and block-IO delay as
/// /proc/<pid>/stat prints them: times in ns become clock ticks by
/// `nsec_to_clock_t`, the RSS is `get_mm_rss` of the counts stat reads,
/// the state letter is `task_state_index`'s, guest time is summed over the
/// threads (so a process whose sum did not settle has no stat here). Its
/// `utime` and `stime` are 0 (the CPU split is the kernel side's counters'
/// own) and its `processor` None.
pub fn tally_processes(records: &[u8], units: Units, memory: bool, stat: bool) -> KernelProcesses {
    let n = records.len() / size_of::<ProcessRecord>();
    let mut out = KernelProcesses {
        figures: HashMap::with_capacity_and_hasher(n, Default::default()),
        stats: HashMap::with_capacity_and_hasher(n, Default::default()),
    };
    for chunk in records.chunks_exact(size_of::<ProcessRecord>()) {
        // SAFETY: a whole record's bytes; read unaligned.
        let r: ProcessRecord = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        let fd_limit = (r.nofile_known != 0).then_some(r.nofile);
        // Not whole: this process's status is read instead.
        let memory = (memory && r.whole != 0).then(|| {
            let rss: u64 = RSS_COUNTERS.iter().map(|&i| pages(r.counters[i])).sum();
            let (peak, swap) = (rss.max(r.hiwater_rss), pages(r.counters[MM_SWAPENTS]));
            KernelMemory { peak_bytes: peak * units.page_size, swap_bytes: swap * units.page_size, fd_limit }
        });
        let io = (r.sums_known != 0).then_some(r.io);
        let fds = (r.fds_known != 0).then_some(u64::from(r.num_fds));
        if memory.is_some() || io.is_some() || fds.is_some() {
            out.figures.insert(r.tgid as i32, Kernel { memory, io, fds });
        }
        if stat && r.stat_known != 0 && r.sums_known != 0 && units.tick_ns > 0 {
            let ticks = |ns: u64| ns / units.tick_ns;
            let start = r.start_boottime.checked_add_signed(units.boottime_offset_ns).unwrap_or(0);
            out.stats.insert(
                r.tgid as i32,
                Stat {
                    pid: r.tgid as i32,
                    comm: crate::probe::event::comm_text(&r.comm),
                    state: letter(r.state, r.exit_state),
                    ppid: r.ppid as i32,
                    utime: 0,
                    stime: 0,
                    starttime: ticks(start),
                    num_threads: u64::from(r.nr_threads),
                    flags: u64::from(r.flags),
                    cutime: ticks(r.cutime),
                    cstime: ticks(r.cstime),
                    vsize: r.total_vm * units.page_size,
                    rss_pages: RSS_COUNTERS.iter().map(|&i| pages(r.counts[i])).sum(),
                    processor: None,
                    blkio_ticks: Some(ticks(r.blkio_delay)),
                    minflt: r.min_flt,
                    majflt: r.maj_flt,
                    guest_ticks: Some(ticks(r.gtime_all)),
                },
            );
        }
    }
    out
}

/// The tracked processes' figures now.
pub fn processes(
    bpf: &mut Ebpf,
    buf: &mut Vec<u8>,
    units: Units,
    memory: bool,
    stat: bool,
) -> Result<KernelProcesses, EbpfError> {
    run(bpf, PROCESSES.0, size_of::<ProcessRecord>(), buf)?;
    let k = tally_processes(buf, units, memory, stat);
    let records = buf.len() / size_of::<ProcessRecord>();
    let given = |f: fn(&Kernel) -> bool| k.figures.values().filter(|g| f(g)).count();
    log::debug!(
        "process iterator: {records} processes, {} left to /proc/<pid>/status, {} to their stat, {} to their io, {} \
         to their fd",
        records - given(|g| g.memory.is_some()),
        records - k.stats.len(),
        records - given(|g| g.io.is_some()),
        records - given(|g| g.fds.is_some()),
    );
    Ok(k)
}

/// The census records (`CensusRecord`s as the kernel side wrote them).
fn records(bytes: &[u8]) -> impl Iterator<Item = CensusRecord> + '_ {
    bytes.chunks_exact(size_of::<CensusRecord>()).map(|chunk| {
        // SAFETY: a whole record's bytes; read unaligned.
        unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) }
    })
}

/// Counts the socket records among census records.
pub fn tally_sockets(bytes: &[u8]) -> SocketCounts {
    let mut seen = HashSet::new();
    let mut out = SocketCounts::default();
    for r in records(bytes).filter(|r| r.kind == CENSUS_SOCKET) {
        if seen.insert(r.ino) {
            out.ip_sockets += 1;
            if r.detail == u32::from(IPPROTO_TCP) && r.state == u32::from(TCP_ESTABLISHED) {
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

/// Counts the thread records among census records by process and state.
pub fn tally_threads(bytes: &[u8]) -> HashMap<i32, ThreadStates> {
    let mut out: HashMap<i32, ThreadStates> = HashMap::default();
    for r in records(bytes).filter(|r| r.kind == CENSUS_THREAD) {
        out.entry(r.tgid as i32).or_default().add(letter(r.state, r.detail));
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

/// The tree's sockets, and its threads by process and state, now. Where
/// the walk of a file table stopped short (`CENSUS_INCOMPLETE`: more
/// sockets than the census reports for one process, say), they are
/// counted by the iterator over every process's open files instead.
pub fn census(bpf: &mut Ebpf, buf: &mut Vec<u8>) -> Result<(SocketCounts, HashMap<i32, ThreadStates>), EbpfError> {
    run(bpf, CENSUS.0, size_of::<CensusRecord>(), buf)?;
    let threads = tally_threads(buf);
    if !records(buf).any(|r| r.kind == CENSUS_INCOMPLETE) {
        return Ok((tally_sockets(buf), threads));
    }
    run(bpf, SOCKETS.0, size_of::<CensusRecord>(), buf)?;
    Ok((tally_sockets(buf), threads))
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
        let rec = |ino, tgid, protocol: u16, state: u16| {
            bytes(CensusRecord { kind: CENSUS_SOCKET, tgid, state: u32::from(state), detail: u32::from(protocol), ino })
        };
        let b: Vec<u8> =
            [rec(7, 1, 6, 1), rec(7, 2, 6, 1), rec(8, 1, 6, 10), rec(9, 1, 17, 7), rec(10, 2, 6, 1)].concat();
        assert_eq!(tally_sockets(&b), SocketCounts { ip_sockets: 4, tcp_established: 2 });
        assert_eq!(tally_sockets(&[]), SocketCounts::default());
    }

    const UNITS: Units = Units { page_size: 4096, tick_ns: 10_000_000, boottime_offset_ns: 0 };

    #[test]
    fn memory_follows_the_kernels_task_mem() {
        let rec = |tgid, hiwater_rss, counters| {
            bytes(ProcessRecord {
                tgid,
                whole: 1,
                hiwater_rss,
                counters,
                nofile: 64,
                nofile_known: u32::from(tgid == 1),
                ..Default::default()
            })
        };
        // RSS 10 + 20 + 5 over a stale high-water mark of 30; 7 swapped.
        // A negative counter (per-CPU parts not yet folded in) reads 0.
        let b: Vec<u8> = [rec(1, 30, [10, 20, 7, 5]), rec(2, 100, [-3, 40, -1, 0])].concat();
        let m = tally_processes(&b, UNITS, true, true).figures;
        let memory = |pid| m[&pid].memory;
        assert_eq!(memory(1), Some(KernelMemory { peak_bytes: 35 * 4096, swap_bytes: 7 * 4096, fd_limit: Some(64) }));
        assert_eq!(memory(2), Some(KernelMemory { peak_bytes: 100 * 4096, swap_bytes: 0, fd_limit: None }));
        // Not asked for (the per-CPU offsets were not found): none.
        assert!(tally_processes(&b, UNITS, false, true).figures.is_empty());
        // A sum that did not settle leaves the process to /proc.
        let b = bytes(ProcessRecord { tgid: 3, whole: 0, hiwater_rss: 1, counters: [1; 4], ..Default::default() });
        assert!(tally_processes(&b, UNITS, true, true).figures.is_empty());
        // The descriptors where they were counted, 0 a count like any other.
        let b = bytes(ProcessRecord { tgid: 4, fds_known: 1, num_fds: 0, ..Default::default() });
        assert_eq!(tally_processes(&b, UNITS, true, true).figures[&4], Kernel { memory: None, io: None, fds: Some(0) });
        let b = bytes(ProcessRecord { tgid: 4, fds_known: 0, num_fds: 9, ..Default::default() });
        assert!(tally_processes(&b, UNITS, true, true).figures.is_empty());
    }

    #[test]
    fn stat_follows_the_kernels_do_task_stat() {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"post");
        let r = ProcessRecord {
            tgid: 42,
            stat_known: 1,
            ppid: 7,
            state: 1,
            flags: 0x40_0100,
            nr_threads: 3,
            start_boottime: 12_345_678_999,
            cutime: 20_000_001,
            cstime: 9_999_999,
            blkio_delay: 30_000_000,
            min_flt: 5,
            maj_flt: 6,
            sums_known: 1,
            gtime_all: 30_000_000,
            io: [1, 2, 3, 4, 5, 6, 7],
            // Stat's RSS: the counts, a negative one as 0, swap not in it.
            counts: [10, 20, 1000, -5],
            counters: [11, 21, 1000, 3],
            total_vm: 300,
            comm,
            ..Default::default()
        };
        let s = &tally_processes(&bytes(r), UNITS, true, true).stats[&42];
        assert_eq!((s.pid, s.comm.as_str(), s.state, s.ppid, s.flags), (42, "post", 'S', 7, 0x40_0100));
        // Ticks of 10 ms, rounded down as nsec_to_clock_t does.
        assert_eq!((s.starttime, s.cutime, s.cstime), (1234, 2, 0));
        // Guest time is the process's, summed over its threads.
        assert_eq!((s.blkio_ticks, s.guest_ticks, s.minflt, s.majflt), (Some(3), Some(3), 5, 6));
        assert_eq!(tally_processes(&bytes(r), UNITS, true, true).figures[&42].io, Some([1, 2, 3, 4, 5, 6, 7]));
        // A sum that did not settle: neither stat nor IO from here.
        let unsettled = tally_processes(&bytes(ProcessRecord { sums_known: 0, ..r }), UNITS, true, true);
        assert!(unsettled.stats.is_empty() && unsettled.figures.values().all(|g| g.io.is_none()));
        assert_eq!((s.num_threads, s.rss_pages, s.vsize), (3, 30, 300 * 4096));
        // A time namespace's boot-time offset moves start times as /proc does.
        let shifted = Units { boottime_offset_ns: -2_000_000_000, ..UNITS };
        assert_eq!(tally_processes(&bytes(r), shifted, true, true).stats[&42].starttime, 1034);
        // Not read, not asked for, or ticks that do not divide a second:
        // stat is read from /proc.
        let unknown = ProcessRecord { stat_known: 0, ..r };
        assert!(tally_processes(&bytes(unknown), UNITS, true, true).stats.is_empty());
        assert!(tally_processes(&bytes(r), UNITS, true, false).stats.is_empty());
        let odd = Units { tick_ns: 0, ..UNITS };
        assert!(tally_processes(&bytes(r), odd, true, true).stats.is_empty());
        assert_eq!(Units::new(4096, 1024.0).tick_ns, 0);
        assert_eq!(Units::new(4096, 100.0).tick_ns, 10_000_000);
    }

    #[test]
    fn boottime_offsets_are_read_in_ns() {
        assert_eq!(boottime_offset("monotonic 0 0\nboottime -5 250\n"), Some(-4_999_999_750));
        assert_eq!(boottime_offset("monotonic 0 0\n"), None);
        assert_eq!(boottime_offset("boottime x 0\n"), None);
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
        let rec =
            |state, exit_state| bytes(CensusRecord { kind: CENSUS_THREAD, tgid: 1, state, detail: exit_state, ino: 0 });
        let b: Vec<u8> = [rec(0, 0), rec(1, 0), rec(1, 0), rec(2, 0), rec(0x80, 0x20)].concat();
        let t = tally_threads(&b)[&1];
        assert_eq!((t.running, t.sleeping, t.disk_sleep, t.stopped, t.zombie), (1, 2, 1, 0, 1));
    }
}
