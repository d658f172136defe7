//! Tree-wide /proc figures that both modes record: memory, threads, file
//! descriptors, sockets, storage IO, block-IO delay, reaped children; and, in
//! procfs mode, what eBPF otherwise counts (switches, read/write syscalls).

use std::collections::HashSet;

use crate::base::hash::FastMap as HashMap;

use super::parse::Stat;
use super::process::{self, ProcessFigures, Reads};
use super::root::{ProcRoot, ReadError};
use crate::base::table::Column;
use crate::probe::Measure;
use crate::probe::delta::DeltaRows;
use crate::probe::measure::float;

/// Sums of per-process gauges; None once any process's value is unknown.
#[derive(Default)]
struct Sum(Option<f64>, bool);

impl Sum {
    fn add(&mut self, v: Option<u64>) {
        match (v, self.1) {
            (Some(v), false) => self.0 = Some(self.0.unwrap_or(0.0) + v as f64),
            _ => {
                self.1 = true;
                self.0 = None;
            }
        }
    }

    fn measure(&self) -> Measure {
        match (self.0, self.1) {
            (Some(v), false) => Measure::Value(v),
            (None, false) => Measure::Value(0.0),
            _ => Measure::Missing,
        }
    }
}

/// The tree's sockets at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketCounts {
    /// Distinct TCP and UDP sockets (IPv4 and IPv6), however many
    /// descriptors or processes hold each.
    pub ip_sockets: u64,
    /// Of those, TCP sockets in state ESTABLISHED.
    pub tcp_established: u64,
}

/// Each process's gains over the window, by pid.
pub type PerProcess = HashMap<i32, ProcessGains>;

/// Where the socket counts and thread states of a read come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sockets {
    /// Scanned here from /proc (descriptors, then the namespace's tables;
    /// each thread's stat).
    Scan,
    /// Counted by the kernel side (ebpf mode's census).
    Counted(Census),
}

/// Reads the tree's /proc figures each sample.
pub struct TreeFigures {
    proc: ProcRoot,
    reads: Reads,
    /// Which of the figures eBPF can provide come from here.
    own: FromProc,
    page_size: u64,
    ticks_per_second: f64,
    mem_total: Option<u64>,
    /// Each process's cumulative counters (`IO` .. `MAJFLT`), by pid and
    /// start time.
    deltas: DeltaRows<(i32, u64), COUNTERS>,
    /// Costly reads, each done at most so often; rows in between have
    /// their figures missing.
    socket_scan: Throttle,
    state_scan: Throttle,
    smaps: Throttle,
    /// The kernel side's figures for the next read, by process
    /// (`use_kernel`); /proc's files for the others.
    kernel: HashMap<i32, process::Kernel>,
}

/// A process's cumulative counters in `TreeFigures::deltas`: /proc/<pid>/io's
/// seven (`IO_FIELDS` order) from `IO`, block-IO delay and guest ticks,
/// minor and major faults.
const IO: usize = 0;
const BLKIO: usize = 7;
const GUEST: usize = 8;
const MINFLT: usize = 9;
const MAJFLT: usize = 10;
const COUNTERS: usize = 11;

/// Process `s`'s counters for `TreeFigures::deltas`, with its IO counters
/// `io` and block-IO delay `blkio` (each None where unknown).
fn counters(s: &Stat, io: Option<[u64; 7]>, blkio: Option<u64>) -> [Option<u64>; COUNTERS] {
    let mut c = [None; COUNTERS];
    if let Some(io) = io {
        for (c, v) in c[IO..IO + 7].iter_mut().zip(io) {
            *c = Some(v);
        }
    }
    (c[BLKIO], c[GUEST], c[MINFLT], c[MAJFLT]) = (blkio, s.guest_ticks, Some(s.minflt), Some(s.majflt));
    c
}

/// Column order of `TreeFigures::read`.
fn names(own: FromProc) -> Vec<&'static str> {
    let mut n = vec![
        "proc_num_threads",
        "proc_num_threads_running",
        "proc_num_threads_sleeping",
        "proc_num_threads_disk_sleep",
        "proc_num_threads_stopped",
        "proc_num_threads_zombie",
        "proc_num_fds",
        "proc_fd_limit",
        "proc_fd_used_percent",
        "proc_num_ip_sockets_open",
        "proc_num_tcp_connections",
        "proc_io_storage_read_throughput_mibps",
        "proc_io_storage_write_throughput_mibps",
        "proc_io_cancelled_write_throughput_mibps",
        "proc_io_blkio_delay_percent",
        "proc_cpu_util_percent_guest",
        "proc_mem_rss",
        "proc_mem_vms",
        "proc_mem_pss",
        "proc_mem_uss",
        "proc_mem_swap",
        "proc_mem_dirty",
        "proc_mem_rss_percent",
        "proc_mem_rss_peak",
        "proc_cpu_children_user_s",
        "proc_cpu_children_system_s",
    ];
    if own.disk {
        n.extend([
            "proc_disk_read_throughput_mibps",
            "proc_disk_write_throughput_mibps",
            "proc_disk_read_rate_hz",
            "proc_disk_write_rate_hz",
        ]);
    }
    if own.faults {
        n.extend(["proc_page_faults_minor_rate_hz", "proc_page_faults_major_rate_hz"]);
    }
    n
}

/// Figures that the eBPF probe counts in the kernel when it can, and that
/// these /proc figures then leave out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FromProc {
    /// `proc_disk_*` from /proc/<pid>/io (no kernel-side syscall counting).
    pub disk: bool,
    /// Page faults from /proc/<pid>/stat.
    pub faults: bool,
}

impl FromProc {
    /// procfs mode: everything from /proc.
    pub const ALL: FromProc = FromProc { disk: true, faults: true };
}

/// The tree's threads by state at one instant, as /proc shows a thread's
/// state letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadStates {
    /// R: on a CPU or runnable, waiting for one.
    pub running: u64,
    /// S (interruptible sleep), I (idle) and P (parked).
    pub sleeping: u64,
    /// D: uninterruptible sleep (usually IO).
    pub disk_sleep: u64,
    /// T (stopped by a signal) and t (stopped by a tracer).
    pub stopped: u64,
    /// Z: exited, not yet reaped.
    pub zombie: u64,
}

impl ThreadStates {
    /// Counts a thread in state `c` (a /proc state letter); X (dead) and
    /// unknown letters are not counted.
    pub fn add(&mut self, c: char) {
        match c {
            'R' => self.running += 1,
            'S' | 'I' | 'P' => self.sleeping += 1,
            'D' => self.disk_sleep += 1,
            'T' | 't' => self.stopped += 1,
            'Z' => self.zombie += 1,
            _ => {}
        }
    }

    /// As the five values of `ProcessExtras::thread_states`.
    pub fn values(&self) -> [f64; 5] {
        [self.running, self.sleeping, self.disk_sleep, self.stopped, self.zombie].map(|v| v as f64)
    }

    fn sum(&mut self, o: &Self) {
        self.running += o.running;
        self.sleeping += o.sleeping;
        self.disk_sleep += o.disk_sleep;
        self.stopped += o.stopped;
        self.zombie += o.zombie;
    }

    fn measures(s: Option<Self>) -> [Measure; 5] {
        match s {
            Some(s) => [s.running, s.sleeping, s.disk_sleep, s.stopped, s.zombie].map(|v| Measure::Value(v as f64)),
            None => [Measure::Missing; 5],
        }
    }
}

/// What the kernel side counted at this read (ebpf mode's iterators); None
/// where unknown this time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Census {
    pub sockets: Option<SocketCounts>,
    /// By process.
    pub states: Option<HashMap<i32, ThreadStates>>,
}

/// One process's gains over the window, and its other figures.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProcessGains {
    /// rchar, wchar; None if /proc/<pid>/io could not be read.
    pub rw: Option<(u64, u64)>,
    /// Minor and major page faults.
    pub faults: (u64, u64),
    pub extras: crate::probe::ProcessExtras,
}

/// Socket tables of a network namespace: inode -> (is TCP, TCP state).
fn socket_table(proc: &ProcRoot, pid: i32) -> HashMap<u64, (bool, u8)> {
    let mut out = HashMap::default();
    for (file, tcp) in [("tcp", true), ("tcp6", true), ("udp", false), ("udp6", false)] {
        let Ok(text) = proc.read(format!("{pid}/net/{file}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(st), Some(inode)) = (f.get(3), f.get(9))
                && let (Ok(st), Ok(inode)) = (u8::from_str_radix(st, 16), inode.parse::<u64>())
            {
                out.insert(inode, (tcp, st));
            }
        }
    }
    out
}

/// Sockets cost a readlink per file descriptor and a parse of the
/// namespace's socket tables (25 ms for 5000 sockets here): counted at most
/// this often (ns), and less often when that would cost more than
/// `SOCKET_BUDGET`.
const SOCKET_SCAN_NS: u64 = 1_000_000_000;

/// The share of one core that counting sockets and thread states may take
/// (either mode): the eBPF census of 5000 sockets (~3 ms here) runs in every
/// 0.5 s window.
pub const SOCKET_BUDGET: f64 = 0.01;

/// At intervals shorter than this (ns), sockets and thread states are
/// counted at most this often, about twice a second, so that a 10 ms
/// recording of an idle process does not spend its CPU on them; at longer
/// intervals in every row (`Reads::census_ns` is then 0).
pub const CENSUS_NS: u64 = 450_000_000;

/// smaps_rollup walks every page table of the process (~2.5 ms for 1000
/// threads' stacks): read at most this often (ns), so every row at 0.45 s
/// and longer intervals (0.5 s ticks may come a little early), about twice
/// a second at shorter ones; and less often when that would cost more than
/// `SMAPS_BUDGET`.
const SMAPS_NS: u64 = 450_000_000;

/// The share of one core smaps_rollup may take: its period stretches to
/// its cost divided by this (2.5 ms of smaps_rollup: every 2.5 s).
const SMAPS_BUDGET: f64 = 0.001;

/// Lets a costly read happen at most once per period (CLOCK_MONOTONIC ns)
/// and within its CPU budget (a share of one core), kept as credit: time
/// earns `budget` ns of credit per ns, up to `CREDIT_NS` × budget, and a
/// read spends the CPU time it took (`clock::thread_cpu_ns`: its wall time
/// on a busy machine holds what others ran meanwhile). A read is due when
/// the period has passed and the credit is not negative, so over any long
/// span reads take at most the budget, and one read that cost more than
/// usual (the first, cold one) delays the next only by the debt it left,
/// not by its whole cost over the budget.
pub struct Throttle {
    period_ns: u64,
    budget: f64,
    last: Option<u64>,
    /// Credit (ns of reading) as of `earned_at`; negative while in debt.
    credit_ns: f64,
    earned_at: Option<u64>,
}

/// The credit a throttle may save, in ns of wall time at its budget: one
/// second's worth (10 ms at 1 %), so an idle spell cannot buy a burst.
const CREDIT_NS: f64 = 1e9;

impl Throttle {
    pub fn every(period_ns: u64, budget: f64) -> Self {
        Self { period_ns, budget, last: None, credit_ns: CREDIT_NS * budget, earned_at: None }
    }

    /// True (and noted) if the period has passed since the last time and
    /// the credit allows a read.
    pub fn due(&mut self, now: u64) -> bool {
        if let Some(t) = self.earned_at {
            let earned = now.saturating_sub(t) as f64 * self.budget;
            self.credit_ns = (self.credit_ns + earned).min(CREDIT_NS * self.budget);
        }
        self.earned_at = Some(now);
        let due = self.credit_ns >= 0.0 && self.last.is_none_or(|t| now.saturating_sub(t) >= self.period_ns);
        if due {
            self.last = Some(now);
        }
        due
    }

    /// Notes what the read that was due took.
    pub fn spent(&mut self, ns: u64) {
        self.credit_ns -= ns as f64;
    }
}

/// TCP_ESTABLISHED in /proc/net/tcp's `st` column.
const TCP_ESTABLISHED: u8 = 1;

impl TreeFigures {
    pub fn new(proc: ProcRoot, reads: Reads, own: FromProc) -> Self {
        // SAFETY: sysconf has no preconditions.
        let (page, hz) = unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
        let mem_total = proc
            .read("meminfo")
            .ok()
            .and_then(|t| super::kv::parse("meminfo", &t, &["MemTotal"]).ok())
            .and_then(|m| m.get("MemTotal").copied());
        Self {
            proc,
            reads,
            own,
            page_size: u64::try_from(page).unwrap_or(4096),
            ticks_per_second: if hz > 0 { hz as f64 } else { 100.0 },
            mem_total,
            deltas: DeltaRows::default(),
            socket_scan: Throttle::every(SOCKET_SCAN_NS, SOCKET_BUDGET),
            state_scan: Throttle::every(reads.census_ns, SOCKET_BUDGET),
            smaps: Throttle::every(SMAPS_NS, SMAPS_BUDGET),
            kernel: HashMap::default(),
        }
    }

    /// The kernel side's figures (VmHWM and VmSwap, /proc/<pid>/io's
    /// counters, open descriptors) for the next `read`, replacing what an
    /// earlier call gave.
    pub fn use_kernel(&mut self, k: HashMap<i32, process::Kernel>) {
        self.kernel = k;
    }

    pub fn columns(&self) -> Vec<Column> {
        names(self.own).into_iter().map(float).collect()
    }

    /// Baselines processes that existed before they were tracked: their IO
    /// counts from now on.
    pub fn prime(&mut self, stats: &[Stat]) {
        for s in stats {
            self.deltas.prime((s.pid, s.starttime), counters(s, process::io(&self.proc, s.pid), s.blkio_ticks));
        }
    }

    /// The threads of `stats`' processes by state, from each thread's
    /// stat (a read per thread); None if a live process's threads could not
    /// be read.
    fn scan_states(&self, stats: &[Stat]) -> Option<HashMap<i32, ThreadStates>> {
        let mut out = HashMap::default();
        for s in stats {
            let Ok(tids) = self.proc.tasks(s.pid) else { continue };
            let mine: &mut ThreadStates = out.entry(s.pid).or_default();
            for tid in tids {
                // The letter after the comm's closing parenthesis.
                if let Ok(text) = self.proc.read(format!("{}/task/{tid}/stat", s.pid))
                    && let Some(c) = text.rfind(')').and_then(|i| text[i + 1..].trim_start().chars().next())
                {
                    mine.add(c);
                }
            }
        }
        Some(out)
    }

    /// Reads the processes whose stats are `stats` (the tree now; the ones
    /// that vanished meanwhile are skipped).
    /// Also returns each process's gains over the window, by pid.
    pub fn read(&mut self, stats: &[Stat], counted: Sockets) -> Result<(Vec<Measure>, PerProcess), ReadError> {
        if stats.is_empty() {
            // No process: the figures are unknown, not zero.
            return Ok((vec![Measure::Missing; names(self.own).len()], HashMap::default()));
        }
        let now = crate::base::clock::monotonic_ns();
        let reads = Reads {
            sockets: counted == Sockets::Scan && self.reads.sockets && self.socket_scan.due(now),
            census_ns: self.reads.census_ns,
            smaps: self.reads.smaps && self.smaps.due(now),
        };
        // Given for this read only.
        let given = std::mem::take(&mut self.kernel);
        let mut figures: Vec<(&Stat, ProcessFigures)> = Vec::with_capacity(stats.len());
        let mut spent = process::Spent::default();
        for s in stats {
            let kernel = given.get(&s.pid).copied().unwrap_or_default();
            match process::read(&self.proc, s, self.page_size, reads, kernel, &mut spent) {
                Ok(f) => figures.push((s, f)),
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        let mut threads = 0.0;
        let (mut fds, mut rss, mut vms, mut pss, mut uss, mut swap, mut dirty, mut peak) = (
            Sum::default(),
            Sum::default(),
            Sum::default(),
            Sum::default(),
            Sum::default(),
            Sum::default(),
            Sum::default(),
            Sum::default(),
        );
        let (mut cu, mut cs) = (0.0, 0.0);
        let mut io = [0.0; 7];
        let mut io_known = true;
        let mut blkio = 0.0;
        let mut blkio_known = true;
        let mut sockets: Option<HashSet<u64>> = Some(HashSet::new());
        let mut per_process = HashMap::default();
        let (mut guest, mut guest_known) = (0.0, true);
        let mut faults = [0.0; 2];
        // The highest descriptor use against the process's own soft limit.
        let mut fd_use: Option<(f64, u64)> = None;
        let mut fd_use_known = true;
        for (s, f) in &figures {
            let d = self.deltas.observe((s.pid, s.starttime), counters(s, f.io, f.blkio_ticks));
            threads += f.num_threads as f64;
            fds.add(f.num_fds);
            rss.add(Some(f.rss_bytes));
            vms.add(Some(f.vms_bytes));
            pss.add(f.pss_bytes);
            uss.add(f.uss_bytes);
            swap.add(f.swap_bytes);
            dirty.add(f.dirty_bytes);
            peak.add(f.rss_peak_bytes);
            cu += f.children_user_ticks as f64;
            cs += f.children_system_ticks as f64;
            let mut gains = ProcessGains {
                rw: None,
                faults: (d[MINFLT].unwrap_or(0), d[MAJFLT].unwrap_or(0)),
                extras: crate::probe::ProcessExtras::default(),
            };
            let x = &mut gains.extras;
            x.num_fds = f.num_fds.map_or(f64::NAN, |n| n as f64);
            x.fd_limit = match f.fd_limit {
                Some(u64::MAX) => f64::INFINITY,
                Some(l) => l as f64,
                None => f64::NAN,
            };
            faults[0] += gains.faults.0 as f64;
            faults[1] += gains.faults.1 as f64;
            match f.io {
                Some(_) => {
                    let gained = |i: usize| d[IO + i].unwrap_or(0);
                    for (i, sum) in io.iter_mut().enumerate() {
                        *sum += gained(i) as f64;
                    }
                    gains.rw = Some((gained(0), gained(1)));
                    gains.extras.cancelled_write_bytes = gained(6) as f64;
                }
                None => io_known = false,
            }
            match d[GUEST] {
                Some(g) => {
                    let g = g as f64;
                    guest += g;
                    gains.extras.guest_ns = g / self.ticks_per_second * 1e9;
                }
                None => guest_known = false,
            }
            per_process.insert(s.pid, gains);
            match (f.num_fds, f.fd_limit) {
                (Some(n), Some(limit)) if limit > 0 => {
                    let used = n as f64 / limit as f64;
                    if fd_use.is_none_or(|(u, _)| used > u) {
                        fd_use = Some((used, limit));
                    }
                }
                _ => fd_use_known = false,
            }
            match d[BLKIO] {
                Some(t) => blkio += t as f64,
                None => blkio_known = false,
            }
            match (&mut sockets, &f.socket_inodes) {
                (Some(set), Some(inodes)) => set.extend(inodes),
                _ => sockets = None,
            }
        }
        self.deltas.commit();
        if reads.smaps {
            self.smaps.spent(spent.smaps_ns);
        }
        let (ip_sockets, tcp_conns) = match (&counted, &sockets, stats.first()) {
            (Sockets::Counted(Census { sockets: Some(c), .. }), ..) => {
                (Measure::Value(c.ip_sockets as f64), Measure::Value(c.tcp_established as f64))
            }
            (Sockets::Counted(Census { sockets: None, .. }), ..) => (Measure::Missing, Measure::Missing),
            (Sockets::Scan, Some(set), Some(first)) => {
                let t0 = crate::base::clock::thread_cpu_ns();
                let table = socket_table(&self.proc, first.pid);
                self.socket_scan.spent(spent.sockets_ns + crate::base::clock::thread_cpu_ns().saturating_sub(t0));
                let found: Vec<&(bool, u8)> = set.iter().filter_map(|i| table.get(i)).collect();
                let tcp = found.iter().filter(|(tcp, st)| *tcp && *st == TCP_ESTABLISHED).count();
                (Measure::Value(found.len() as f64), Measure::Value(tcp as f64))
            }
            (Sockets::Scan, Some(_), None) => (Measure::Value(0.0), Measure::Value(0.0)),
            (Sockets::Scan, None, _) => (Measure::Missing, Measure::Missing),
        };
        let by_process = match counted {
            Sockets::Counted(c) => c.states,
            Sockets::Scan if self.state_scan.due(now) => {
                let t0 = crate::base::clock::thread_cpu_ns();
                let s = self.scan_states(stats);
                self.state_scan.spent(crate::base::clock::thread_cpu_ns().saturating_sub(t0));
                s
            }
            Sockets::Scan => None,
        };
        let states = by_process.as_ref().map(|m| {
            let mut total = ThreadStates::default();
            for (pid, s) in m {
                total.sum(s);
                if let Some(g) = per_process.get_mut(pid) {
                    g.extras.thread_states = s.values();
                }
            }
            total
        });
        let known = |ok: bool, m: Measure| if ok { m } else { Measure::Missing };
        let (fd_limit, fd_used) = match fd_use {
            Some((used, limit)) if fd_use_known => (
                // Unlimited is infinite, stored as such.
                Measure::Value(if limit == u64::MAX { f64::INFINITY } else { limit as f64 }),
                Measure::Value(used * 100.0),
            ),
            _ => (Measure::Missing, Measure::Missing),
        };
        let rss_percent = match (rss.measure(), self.mem_total) {
            (Measure::Value(r), Some(total)) if total > 0 => Measure::Value(r / total as f64 * 100.0),
            _ => Measure::Missing,
        };
        let mut m = vec![Measure::Value(threads)];
        m.extend(ThreadStates::measures(states));
        m.extend([
            fds.measure(),
            fd_limit,
            fd_used,
            ip_sockets,
            tcp_conns,
            known(io_known, Measure::MibPerSecond(io[4])),
            known(io_known, Measure::MibPerSecond(io[5])),
            known(io_known, Measure::MibPerSecond(io[6])),
            // Ticks of waiting, as nanoseconds, per window.
            known(blkio_known, Measure::PercentOfWindow(blkio / self.ticks_per_second * 1e9)),
            known(guest_known, Measure::PercentOfWindow(guest / self.ticks_per_second * 1e9)),
            rss.measure(),
            vms.measure(),
            pss.measure(),
            uss.measure(),
            swap.measure(),
            dirty.measure(),
            rss_percent,
            peak.measure(),
            Measure::Value(cu / self.ticks_per_second),
            Measure::Value(cs / self.ticks_per_second),
        ]);
        if self.own.disk {
            m.extend([
                known(io_known, Measure::MibPerSecond(io[0])),
                known(io_known, Measure::MibPerSecond(io[1])),
                known(io_known, Measure::PerSecond(io[2])),
                known(io_known, Measure::PerSecond(io[3])),
            ]);
        }
        if self.own.faults {
            m.extend([Measure::PerSecond(faults[0]), Measure::PerSecond(faults[1])]);
        }
        Ok((m, per_process))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_lets_through_once_per_period() {
        let mut t = Throttle::every(100, 0.001);
        assert!(t.due(1_000));
        assert!(!t.due(1_099));
        assert!(t.due(1_100));
        assert!(!t.due(1_150));
    }

    #[test]
    fn a_costly_read_stretches_its_period_to_its_budget() {
        // 1 ms of credit at 0.1 % of a core.
        let mut t = Throttle::every(100, 0.001);
        assert!(t.due(1_000));
        // 3 ms spent: 2 ms in debt, paid off by 2 s of time.
        t.spent(3_000_000);
        assert!(!t.due(1_000_000_000));
        assert!(!t.due(2_000_000_000));
        assert!(t.due(2_000_100_000));
        // Reads that cost 2.5 ms each: one per 2.5 s over a long span.
        t.spent(2_500_000);
        let (mut reads, mut now) = (0, 2_000_100_000u64);
        while now < 102_000_100_000 {
            now += 10_000_000;
            if t.due(now) {
                t.spent(2_500_000);
                reads += 1;
            }
        }
        assert!((39..=41).contains(&reads), "{reads} reads in 100 s");
    }

    #[test]
    fn one_read_over_budget_delays_the_next_only_by_its_debt() {
        // The census at 1 %: 10 ms of credit; windows of 0.5 s earn 5 ms.
        let mut t = Throttle::every(0, 0.01);
        assert!(t.due(0));
        // A cold first read of 6 ms: within the credit, the next is due.
        t.spent(6_000_000);
        assert!(t.due(490_000_000));
        t.spent(3_000_000);
        assert!(t.due(990_000_000));
        // Saving is capped: after an idle minute, 10 ms of credit, not 600.
        t.spent(0);
        assert!(t.due(60_000_000_000));
        t.spent(12_000_000);
        assert!(!t.due(60_000_000_001));
        assert!(t.due(60_300_000_001));
    }

    use crate::base::proc::testutil::FakeProc;

    #[test]
    fn sums_over_the_tree_and_marks_unknowns_missing() {
        let p = FakeProc::new();
        p.file("meminfo", "MemTotal: 4096 kB\n");
        p.process(10, 1, "a", &[10, 11]);
        p.process(12, 10, "b", &[12]);
        p.file(
            "10/io",
            "rchar: 100\nwchar: 0\nsyscr: 1\nsyscw: 0\nread_bytes: 4096\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
        );
        p.file(
            "12/io",
            "rchar: 100\nwchar: 0\nsyscr: 1\nsyscw: 0\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
        );
        p.file("10/smaps_rollup", "Pss: 8 kB\nPrivate_Clean: 0 kB\nPrivate_Dirty: 4 kB\nShared_Dirty: 0 kB\n");
        let root = p.root();
        let mut t = TreeFigures::new(root.clone(), Reads { smaps: true, sockets: true, census_ns: 0 }, FromProc::ALL);
        let cols = t.columns();
        let stats = vec![root.stat(10).unwrap(), root.stat(12).unwrap()];
        let (m, _) = t.read(&stats, Sockets::Scan).unwrap();
        assert_eq!(m.len(), cols.len());
        let at = |n: &str| m[cols.iter().position(|c| c.name == n).unwrap()];
        assert_eq!(at("proc_num_threads"), Measure::Value(3.0));
        // Each thread's stat says S.
        assert_eq!(at("proc_num_threads_sleeping"), Measure::Value(3.0));
        assert_eq!(at("proc_num_threads_running"), Measure::Value(0.0));
        let rss = 2.0 * 300.0 * t.page_size as f64;
        assert_eq!(at("proc_mem_rss"), Measure::Value(rss));
        assert_eq!(at("proc_mem_rss_percent"), Measure::Value(rss / (4096.0 * 1024.0) * 100.0));
        assert_eq!(at("proc_mem_pss"), Measure::Missing, "process 12 has no smaps_rollup");
        assert_eq!(at("proc_cpu_children_user_s"), Measure::Value(6.0 / t.ticks_per_second));
        p.file("10/io", "rchar: 1124\nwchar: 0\nsyscr: 3\nsyscw: 0\nread_bytes: 4096\nwrite_bytes: 512\ncancelled_write_bytes: 256\n");
        let (m, per) = t.read(&stats, Sockets::Scan).unwrap();
        assert_eq!(per[&10].rw, Some((1024, 0)));
        let at = |n: &str| m[cols.iter().position(|c| c.name == n).unwrap()];
        assert_eq!(at("proc_disk_read_rate_hz").value(1_000_000_000), 2.0);
        assert_eq!(at("proc_disk_read_throughput_mibps").value(1_000_000_000), 1024.0 / 1048576.0);
        assert_eq!(at("proc_io_storage_read_throughput_mibps").value(1), 0.0);
        assert_eq!(at("proc_io_cancelled_write_throughput_mibps").value(1_000_000_000), 256.0 / 1048576.0);
    }
}
