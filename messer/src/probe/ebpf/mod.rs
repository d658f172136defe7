//! The eBPF probe: loads messer's BPF programs, tracks the target's tree in
//! the kernel, and reads exact per-window counters from the maps.

pub mod batch;
pub mod btf;
pub mod census;
pub mod counters;
pub mod flush;
pub mod handle;
pub mod load;
pub mod mapping;
pub mod marks;
pub mod runq;
pub mod stats;
pub mod threads;
pub mod tracefs;
pub mod tracked;

use std::collections::HashSet;

use aya::Ebpf;
use aya::maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::RawTracePoint;
use messer_common::{Counters, EpochCounters, Event, RunSlot, TRACKED_EXITED, TRACKED_LEFT, Tracked, io, stat};

use crate::base::table::Column;
use crate::probe::EventKind;
use crate::probe::measure::{float, integer};
use crate::probe::procfs::ProcRoot;
use crate::probe::procfs::cgroup::CgroupFigures;
use crate::probe::procfs::figures::{Census, FromProc, SOCKET_BUDGET, Sockets, Throttle, TreeFigures};
use crate::probe::procfs::host::Host;
use crate::probe::procfs::system::SystemProbe;
use crate::probe::{CpuWindow, Measure, Probe, ProbeError, ProcEvent, Reading};
use crate::targets::cgroup::CgroupDir;
use counters::EpochDeltas;
use stats::ProgramStats;

/// What can go wrong with the eBPF probe.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("no permission to load BPF programs ({0}); run messer as root (sudo), or use --mode procfs")]
    NoPermission(String),
    #[error("{0}")]
    Tracefs(String),
    #[error("{0}; use --mode procfs")]
    Btf(#[from] btf::BtfError),
    #[error("loading the BPF programs failed: {0}")]
    Load(String),
    #[error("reading the BPF maps failed: {0}")]
    Map(String),
    #[error("running the flush program on CPU {cpu} failed: {reason}")]
    Flush { cpu: u32, reason: String },
}

impl EbpfError {
    /// Sorts a load error: lacking privilege (EPERM) is the user's to fix;
    /// EACCES from a program load is the verifier rejecting it, a bug.
    fn load(e: impl std::error::Error + 'static) -> Self {
        let mut src: Option<&dyn std::error::Error> = Some(&e);
        while let Some(s) = src {
            if let Some(io) = s.downcast_ref::<std::io::Error>()
                && io.raw_os_error() == Some(libc::EPERM)
            {
                return EbpfError::NoPermission(io.to_string());
            }
            src = s.source();
        }
        let full = chain(&e);
        // A verifier log is thousands of lines: one line here, all with -v.
        match full.split_once('\n') {
            Some((first, _)) => {
                log::debug!("{full}");
                EbpfError::Load(format!("{first} (the verifier's log follows with -v)"))
            }
            None => EbpfError::Load(full),
        }
    }

    fn map(e: impl std::fmt::Display) -> Self {
        EbpfError::Map(e.to_string())
    }
}

pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Options of the eBPF probe.
#[derive(Debug, Clone)]
pub struct EbpfOptions {
    /// Capacity of the tracked-set and counter maps.
    pub max_processes: u32,
    /// Capacity of the thread map (run-queue wait).
    pub max_threads: u32,
    /// Track new child processes of tracked processes.
    pub follow_children: bool,
    /// Count read/write/send/recv syscalls (a program on every such syscall's exit).
    pub count_io: bool,
    /// Optional /proc reads (smaps_rollup).
    pub reads: crate::probe::procfs::process::Reads,
    /// `--comm`: track every process that runs a program of this comm.
    pub comm: Option<[u8; messer_common::COMM_LEN]>,
    /// Record our programs' run counts and times (BPF_ENABLE_STATS).
    pub bpf_stats: bool,
    /// `--cgroup`: the tracked set is this cgroup's processes, decided in
    /// the kernel.
    pub cgroup: Option<CgroupDir>,
    /// `--runq-latency`: the distribution of the tree's run-queue waits.
    pub runq_latency: bool,
    /// `--threads`: each thread's own window.
    pub threads: bool,
}

/// What the last flush cost: its run time over all CPUs it ran on and on
/// the slowest of them (ns; each call waits for its CPU's interrupt, on
/// CPU), and how many CPUs other than messer's own it interrupted.
#[derive(Clone, Copy, Default)]
struct FlushCost {
    total_ns: u64,
    slowest_ns: u64,
    interrupts: u32,
}

/// The exact part of a read (see `Probe::snap`): flush instants, events and
/// the frozen counters.
struct Snap {
    first: u64,
    last: u64,
    cpus_used: u32,
    events: Vec<ProcEvent>,
    tracked: Vec<(u32, Tracked)>,
    frozen: Vec<Counters>,
}

/// The loaded programs and what the probe remembers between reads.
pub struct EbpfProbe {
    snap: Option<Snap>,
    /// The last flush's cost.
    flush_cost: FlushCost,
    bpf: Ebpf,
    /// Run-queue wait is known (the kernel keeps sched_info).
    runq: bool,
    io: bool,
    follow_children: bool,
    /// The `EVENTS` ring buffer, taken out of `bpf`.
    events: RingBuf<MapData>,
    /// Typed handles on the maps read at every sample, taken out of `bpf`
    /// once.
    running: PerCpuArray<MapData, RunSlot>,
    counters: PerCpuHashMap<MapData, u32, EpochCounters>,
    /// The same map read in a few system calls (see `batch`), and the
    /// per-CPU values' count.
    counters_batch: batch::BatchReader,
    /// The batch read's sums by process, kept between reads (no allocation
    /// per read).
    counters_by_tgid: crate::base::hash::FastMap<u32, Counters>,
    /// The COUNTERS map's hash buckets: a batch read walks all of them.
    counters_buckets: usize,
    possible_cpus: usize,
    /// The kernel side's copy of `epoch` (see `RunSlot::pending`).
    /// `EPOCH`, mapped: the loader announces an epoch with a store, not
    /// a system call.
    epoch_map: mapping::Mapping,
    /// Flush every CPU at the next read, not only those with something
    /// pending: at the start (no CPU seen yet), and after threads became
    /// tracked while they may be running (roots added, a cgroup joined),
    /// which only a flush on their CPU notices; and at least once a second.
    flush_all: bool,
    last_full_flush_ns: u64,
    cpus: Vec<u32>,
    epoch: u64,
    proc: ProcRoot,
    deltas: EpochDeltas,
    /// Tgids seen exited at the previous read: retired at this one, once the
    /// half holding their final switch-out has been read.
    exited: HashSet<u32>,
    /// What is known of each tracked process: its last window from /proc,
    /// or, for one /proc never showed (born and gone between two reads),
    /// what the kernel side's fork, exec and match events told. Its
    /// identity for the windows in which /proc no longer shows it.
    known: crate::base::hash::FastMap<u32, crate::probe::ProcessWindow>,
    programs: ProgramStats,
    tracked: tracked::TrackedSet,
    figures: TreeFigures,
    /// The census is loaded; its read buffer; whether a failed census has
    /// been logged.
    census: bool,
    /// OOM kills are told.
    oom: bool,
    census_buf: Vec<u8>,
    census_failed: bool,
    /// The process iterator gives whole memory counters (`memory`) and
    /// each process's stat (`stat`); its read buffer; whether a failed run
    /// has been logged.
    memory: bool,
    stat: bool,
    /// The process iterator's units (`/proc`'s ticks, pages, time
    /// namespace), read once.
    units: census::Units,
    memory_buf: Vec<u8>,
    memory_failed: bool,
    /// Keeps the census within `SOCKET_BUDGET` (it costs per task of the
    /// machine and per socket of the tree) and its period
    /// (`Reads::census_ns`).
    census_throttle: Throttle,
    system: SystemProbe,
    /// The target cgroup's own accounting (`--cgroup`).
    cgroup: Option<CgroupFigures>,
    /// `--runq-latency`'s histogram.
    runq_latency: Option<runq::RunqLatency>,
    /// `--threads`.
    threads: Option<threads::Threads>,
    host: Host,
}

/// Columns the eBPF probe adds, in the order `measures` fills them.
fn columns(io: bool, programs: &[&str]) -> Vec<Column> {
    let mut c = vec![
        float("proc_cpu_num_used"),
        float("proc_runq_wait_percent"),
        float("proc_runq_wait_mean_ms"),
        float("proc_ctx_switch_rate_hz"),
        float("proc_ctx_switch_voluntary_rate_hz"),
        float("proc_ctx_switch_involuntary_rate_hz"),
        float("proc_page_faults_minor_rate_hz"),
        float("proc_page_faults_major_rate_hz"),
        float("proc_oom_kills"),
    ];
    if io {
        // Read and write keep the original Messer's names (files, pipes
        // and terminals: everything but sockets); recv and send have all
        // socket traffic.
        for prefix in ["disk_read", "disk_write", "net_recv", "net_send"] {
            c.push(float(format!("proc_{prefix}_rate_hz")));
            c.push(float(format!("proc_{prefix}_throughput_mibps")));
        }
    }
    c.push(float("ebpf_flush_spread_us"));
    c.push(float("ebpf_flush_us"));
    c.push(float("ebpf_flush_max_cpu_us"));
    c.push(float("ebpf_flush_interrupts"));
    for name in stat::NAMES {
        c.push(integer(format!("ebpf_{name}")));
    }
    for p in programs {
        c.push(float(format!("bpf_{p}_run_count")));
        c.push(float(format!("bpf_{p}_run_time_ns")));
    }
    c
}

impl EbpfProbe {
    /// Loads and attaches the programs and starts tracking `targets`.
    pub fn start(targets: &[i32], opts: EbpfOptions, proc: ProcRoot) -> Result<Self, EbpfError> {
        let load::Loaded { mut bpf, io, runq, census, oom, memory, stat } = load::load(targets, &opts, &proc)?;
        let events = bpf.take_map("EVENTS").ok_or_else(|| EbpfError::Map("no map EVENTS".into()))?;
        let events = RingBuf::try_from(events).map_err(EbpfError::map)?;
        let programs = ProgramStats::new(io, opts.bpf_stats);
        let flush: &mut RawTracePoint = handle::program(&mut bpf, flush::PROGRAM)?;
        flush.load().map_err(EbpfError::load)?;
        let take =
            |bpf: &mut Ebpf, name: &str| bpf.take_map(name).ok_or_else(|| EbpfError::Map(format!("no map {name}")));
        let running = PerCpuArray::try_from(take(&mut bpf, "RUNNING")?).map_err(EbpfError::map)?;
        let counters_batch = batch::BatchReader::of(&bpf, "COUNTERS")?;
        let counters = PerCpuHashMap::try_from(take(&mut bpf, "COUNTERS")?).map_err(EbpfError::map)?;
        let threads = if opts.threads { Some(threads::Threads::new(&bpf)?) } else { None };
        let possible_cpus = aya::util::nr_cpus().map_err(|(what, e)| EbpfError::Load(format!("{what}: {e}")))?;
        let epoch_map = match bpf.map("EPOCH") {
            Some(aya::maps::Map::Array(data)) => mapping::Mapping::of(data, "EPOCH", size_of::<u64>())?,
            _ => return Err(EbpfError::Map("no array map EPOCH".into())),
        };
        let runq_latency = if opts.runq_latency && runq { Some(runq::RunqLatency::take(&mut bpf)?) } else { None };
        let cpus = aya::util::online_cpus().map_err(|(what, e)| EbpfError::Load(format!("{what}: {e}")))?;
        Ok(Self {
            snap: None,
            bpf,
            io,
            runq,
            follow_children: opts.follow_children && opts.cgroup.is_none(),
            events,
            running,
            counters,
            counters_batch,
            counters_by_tgid: Default::default(),
            counters_buckets: (opts.max_processes as usize).next_power_of_two(),
            possible_cpus,
            epoch_map,
            flush_all: true,
            last_full_flush_ns: 0,
            cpus,
            epoch: 0,
            proc: proc.clone(),
            deltas: EpochDeltas::default(),
            exited: HashSet::new(),
            known: Default::default(),
            programs,
            tracked: tracked::TrackedSet::new(),
            // Without kernel-side syscall counting, read/write come from
            // /proc/<pid>/io under the same column names as in procfs mode.
            // Sockets come from the census where it runs.
            figures: TreeFigures::new(
                proc.clone(),
                crate::probe::procfs::process::Reads { sockets: opts.reads.sockets && !census, ..opts.reads },
                FromProc { disk: !io, faults: false },
            ),
            census,
            oom,
            census_buf: Vec::new(),
            census_failed: false,
            memory,
            stat,
            units: {
                let h = Host::new(&proc);
                census::Units::new(h.page_size, h.ticks_per_second)
            },
            memory_buf: Vec::new(),
            memory_failed: false,
            flush_cost: FlushCost::default(),
            census_throttle: Throttle::every(opts.reads.census_ns, SOCKET_BUDGET),
            system: SystemProbe::new(proc.clone(), "/sys"),
            cgroup: opts.cgroup.map(|c| CgroupFigures::new(c.path)),
            runq_latency,
            threads,
            host: Host::new(&proc),
        })
    }

    /// Moves every CPU into the next epoch; returns the first and last
    /// flush instants (CLOCK_MONOTONIC ns).
    /// Also returns how many CPUs a tracked thread ran on in the window
    /// that just ended.
    fn flush(&mut self) -> Result<(u64, u64, u32), EbpfError> {
        self.epoch += 1;
        let program = self.bpf.program(flush::PROGRAM).ok_or_else(|| EbpfError::Map("no flush program".into()))?;
        let program: &RawTracePoint = program.try_into().map_err(EbpfError::map)?;
        // The new epoch first, then (after a full barrier) the slots: a CPU
        // that marks itself pending after this read sees the new epoch (see
        // `claim` in the kernel side), so only CPUs pending now need the
        // flush's interrupt.
        let announced = crate::base::clock::monotonic_ns();
        self.epoch_map.store(0, self.epoch);
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        // Every CPU after threads became tracked while they may be running;
        // once a second every CPU that has not closed its epoch itself (a
        // CPU that switched since the announcement saw its next thread's
        // mark at that switch).
        let all = self.flush_all;
        let periodic = !all && announced.saturating_sub(self.last_full_flush_ns) >= 1_000_000_000;
        // A CPU that switched since the announcement has closed its epoch
        // itself (see `settle_at_switch` in the kernel side).
        let open = |s: &RunSlot| s.epoch < self.epoch && (periodic || s.pending != 0);
        let straggler = |s: &RunSlot| s.epoch < self.epoch && s.pending != 0;
        let mut before = if all { None } else { Some(self.running.get(&0, 0).map_err(EbpfError::map)?) };
        // A pending CPU that has not switched yet often does while the
        // slots are read once more (a few us), far less than its interrupt
        // (20 to 60 us on a VM).
        if before.as_ref().is_some_and(|b| self.cpus.iter().any(|&c| b.get(c as usize).is_some_and(straggler))) {
            before = Some(self.running.get(&0, 0).map_err(EbpfError::map)?);
        }
        let (mut total, mut slowest, mut skipped, mut interrupts) = (0, 0, false, 0);
        // SAFETY: no arguments.
        let own = u32::try_from(unsafe { libc::sched_getcpu() }).ok();
        for &cpu in &self.cpus {
            let pending = before.as_ref().is_none_or(|b| b.get(cpu as usize).is_none_or(open));
            if !pending {
                skipped = true;
                continue;
            }
            let t0 = crate::base::clock::monotonic_ns();
            flush::run_on_cpu(program, cpu, self.epoch).map_err(|e| EbpfError::Flush { cpu, reason: chain(&e) })?;
            let took = crate::base::clock::monotonic_ns().saturating_sub(t0);
            total += took;
            slowest = slowest.max(took);
            interrupts += u32::from(Some(cpu) != own);
        }
        if all || periodic {
            self.flush_all = false;
            self.last_full_flush_ns = announced;
        }
        self.flush_cost = FlushCost { total_ns: total, slowest_ns: slowest, interrupts };
        let slots = self.running.get(&0, 0).map_err(EbpfError::map)?;
        // A CPU left out has its boundary at the announcement: no tracked
        // thread ran there since its last flush.
        let mut first = if skipped { announced } else { u64::MAX };
        let mut last = if skipped { announced } else { 0 };
        let mut used = 0;
        for &cpu in &self.cpus {
            let Some(s) = slots.get(cpu as usize) else { continue };
            if s.epoch == self.epoch && s.flushed_ns >= announced {
                first = first.min(s.flushed_ns);
                last = last.max(s.flushed_ns);
            }
            let prev = self.epoch - 1;
            used += u32::from(s.used_epoch[(prev & 1) as usize] == prev);
        }
        if first > last {
            return Err(EbpfError::Map("no CPU reached the new epoch".into()));
        }
        Ok((first, last, used))
    }

    fn tracked(&mut self) -> Result<Vec<(u32, Tracked)>, EbpfError> {
        self.tracked.read(&self.bpf)
    }

    /// The frozen half (the previous epoch's parity) of each tgid, summed over CPUs.
    fn frozen(&mut self, tgids: &[(u32, Tracked)]) -> Result<Vec<Counters>, EbpfError> {
        let half = ((self.epoch - 1) & 1) as usize;
        // Nothing credited yet: no entry. A batch read walks every bucket
        // of the map (16384 by default: ~25 us here), a lookup costs a
        // system call (~1 us): batches only for many processes.
        if tgids.len() * BATCH_BUCKETS_PER_KEY >= self.counters_buckets {
            // Summed as the entries come, without a copy of each.
            let by_tgid = &mut self.counters_by_tgid;
            by_tgid.clear();
            let read = self.counters_batch.each_per_cpu::<u32, EpochCounters>(self.possible_cpus, |tgid, _, c| {
                let s = by_tgid.entry(tgid).or_default();
                *s = counters::add(s, &c.half[half]);
            })?;
            if read {
                return Ok(tgids.iter().map(|(tgid, _)| by_tgid.get(tgid).copied().unwrap_or_default()).collect());
            }
        }
        tgids
            .iter()
            .map(|(tgid, _)| match self.counters.get(tgid, 0) {
                Ok(per_cpu) => Ok(per_cpu.iter().fold(Counters::default(), |a, c| counters::add(&a, &c.half[half]))),
                // Nothing credited yet.
                Err(MapError::KeyNotFound) => Ok(Counters::default()),
                Err(e) => Err(EbpfError::map(e)),
            })
            .collect()
    }

    /// Drops a process whose final counters have been read.
    fn retire(&mut self, tgid: u32) -> Result<(), EbpfError> {
        let map = self.bpf.map_mut("TRACKED").ok_or_else(|| EbpfError::Map("no map TRACKED".into()))?;
        let mut tracked: BpfHashMap<&mut MapData, u32, Tracked> = BpfHashMap::try_from(map).map_err(EbpfError::map)?;
        let _ = tracked.remove(&tgid);
        let _ = self.counters.remove(&tgid);
        self.deltas.forget(tgid);
        self.known.remove(&tgid);
        self.exited.remove(&tgid);
        Ok(())
    }

    /// Events the kernel side sent since the last drain.
    fn drain_events(&mut self) -> Vec<ProcEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            if item.len() >= std::mem::size_of::<Event>() {
                // SAFETY: the kernel side writes whole `Event`s; read unaligned.
                let e: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                self.tracked.note(&e);
                out.extend(ProcEvent::from_kernel(&e));
            }
        }
        out
    }

    /// Learns a process's identity and name from a kernel event; an exit
    /// event is given the process's name (the kernel side sends the name of
    /// the thread that exited last, which may be a worker's).
    fn learn(&mut self, e: &mut ProcEvent) {
        let fresh = |e: &ProcEvent| crate::probe::ProcessWindow {
            pid: e.pid,
            ppid: e.ppid,
            start_unixtime: e.unixtime,
            comm: e.comm.clone(),
            rss_bytes: f64::NAN,
            num_threads: f64::NAN,
            read_bytes: f64::NAN,
            write_bytes: f64::NAN,
            faults_minor: f64::NAN,
            faults_major: f64::NAN,
            ..Default::default()
        };
        let tgid = e.pid as u32;
        match e.kind {
            EventKind::Match => {
                // Tracked from its exec on, while it runs: its CPU knows
                // only from a flush (see `adopt` in the kernel side).
                self.flush_all = true;
                self.known.entry(tgid).or_insert_with(|| fresh(e));
            }
            // A new child has its parent's name until it execs.
            EventKind::Fork => {
                self.known.entry(tgid).or_insert_with(|| fresh(e));
            }
            EventKind::Exec => self.known.entry(tgid).or_insert_with(|| fresh(e)).comm.clone_from(&e.comm),
            // Told by whoever moved it: its own name and start from /proc,
            // and its other threads count from now (the kernel side added
            // the leader).
            EventKind::Join => {
                // Its threads may be running now, where no flush looks.
                self.flush_all = true;
                if let Ok(stat) = self.proc.leader_stat(e.pid) {
                    e.comm.clone_from(&stat.comm);
                }
                if let Err(err) = load::seed_threads(&mut self.bpf, &self.proc, e.pid) {
                    log::debug!("threads of pid {} not seeded: {err}", e.pid);
                }
                self.known.entry(tgid).or_insert_with(|| fresh(e));
            }
            EventKind::Exit | EventKind::OomKill | EventKind::Leave => {
                if let Some(k) = self.known.get(&tgid).filter(|k| !k.comm.is_empty()) {
                    e.comm.clone_from(&k.comm);
                }
            }
            _ => {}
        }
    }

    /// The ebpf columns' values; the tree's are missing when nothing was tracked.
    /// `oom_kills`: the window's OOM kill events.
    fn measures(
        &mut self,
        sum: &Counters,
        spread_ns: u64,
        cpus_used: u32,
        present: bool,
        oom_kills: usize,
    ) -> Vec<Measure> {
        let f = |x: u64| x as f64;
        let mut m = vec![
            Measure::Value(f64::from(cpus_used)),
            Measure::PercentOfWindow(f(sum.runq_wait_ns)),
            Measure::Mean { sum: f(sum.runq_wait_ns), count: f(sum.runq_waits), scale: 1e-6 },
            Measure::PerSecond(f(sum.switches_voluntary + sum.switches_involuntary)),
            Measure::PerSecond(f(sum.switches_voluntary)),
            Measure::PerSecond(f(sum.switches_involuntary)),
            Measure::PerSecond(f(sum.faults_minor)),
            Measure::PerSecond(f(sum.faults_major)),
            if self.oom { Measure::Value(oom_kills as f64) } else { Measure::Missing },
        ];
        if !self.runq {
            m[1] = Measure::Missing;
            m[2] = Measure::Missing;
        }
        if self.io {
            // Sockets' reads and writes are network traffic, whichever
            // syscall carried them.
            for families in [&[io::READ][..], &[io::WRITE], &[io::RECV, io::READ_SOCKET], &[io::SEND, io::WRITE_SOCKET]]
            {
                m.push(Measure::PerSecond(families.iter().map(|&i| f(sum.io_calls[i])).sum()));
                m.push(Measure::MibPerSecond(families.iter().map(|&i| f(sum.io_bytes[i])).sum()));
            }
        }
        if !present {
            m.iter_mut().for_each(|x| *x = Measure::Missing);
        }
        m.push(Measure::Value(spread_ns as f64 / 1e3));
        m.push(Measure::Value(self.flush_cost.total_ns as f64 / 1e3));
        m.push(Measure::Value(self.flush_cost.slowest_ns as f64 / 1e3));
        m.push(Measure::Value(f64::from(self.flush_cost.interrupts)));
        match stats::failures(&self.bpf) {
            Some(counts) => m.extend(counts.iter().map(|&n| Measure::Total(n))),
            None => m.extend((0..stat::COUNT).map(|_| Measure::Missing)),
        }
        for p in self.programs.read(&self.bpf) {
            match p {
                Some((runs, ns)) => m.extend([Measure::Value(f(runs)), Measure::Value(f(ns))]),
                None => m.extend([Measure::Missing, Measure::Missing]),
            }
        }
        m
    }
}

impl EbpfProbe {
    /// The tree's sockets and thread states now; each None (logged once)
    /// where its iterator failed, both when the budget does not allow.
    fn run_census(&mut self) -> Census {
        if !self.census_throttle.due(crate::base::clock::monotonic_ns()) {
            return Census::default();
        }
        // Charged in CPU time: the wall time of the iterators' reads also
        // holds what other threads ran meanwhile and what a hypervisor stole
        // (with steal accounting the thread's clock leaves that out), and
        // would skip rows the budget affords.
        let (t0, wall0) = (crate::base::clock::thread_cpu_ns(), crate::base::clock::monotonic_ns());
        let counted = census::census(&mut self.bpf, &mut self.census_buf);
        let spent = crate::base::clock::thread_cpu_ns().saturating_sub(t0);
        self.census_throttle.spent(spent);
        let wall = crate::base::clock::monotonic_ns().saturating_sub(wall0);
        log::debug!(
            "census: {:?} in {} us of CPU, {} us of wall time",
            counted.as_ref().ok().map(|c| c.0),
            spent / 1000,
            wall / 1000
        );
        match self.census_ok(counted) {
            Some((sockets, states)) => Census { sockets: Some(sockets), states: Some(states) },
            None => Census::default(),
        }
    }

    /// The tracked processes' stat and VmHWM and VmSwap from the process
    /// iterator, where it gives them; empty (so /proc is read) where it
    /// fails, logged once.
    fn kernel_processes(&mut self) -> census::KernelProcesses {
        match census::processes(&mut self.bpf, &mut self.memory_buf, self.units, self.memory, self.stat) {
            Ok(m) => m,
            Err(e) => {
                if !std::mem::replace(&mut self.memory_failed, true) {
                    log::warn!("the process iterator failed ({e}): stat and status are read from /proc where it fails");
                }
                census::KernelProcesses::default()
            }
        }
    }

    /// A census result; a failure is logged once and its figures missing.
    fn census_ok<T>(&mut self, r: Result<T, EbpfError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if !std::mem::replace(&mut self.census_failed, true) {
                    log::warn!("the census failed ({e}): its figures are missing where it fails");
                }
                None
            }
        }
    }
}

/// The process iterator visits every task of the machine (~0.1 us each);
/// /proc/<pid>/status costs ~9 us a process, its stat about as much: the
/// iterator from this many processes on (1000 processes at 0.1 s: messer
/// 28 % of a core against 41 % with status).
const PROCESS_ITER_MIN_PROCESSES: usize = 16;

/// A batch read of COUNTERS pays once there are more tracked processes
/// than its buckets over this (measured: ~1.5 ns a bucket against ~1 us a
/// lookup, with room for the lookups' per-CPU copies).
const BATCH_BUCKETS_PER_KEY: usize = 512;

/// A window's CPU from the kernel side's counters: the exact total, split in
/// the ratio of the ticks the kernel charged to user and system mode.
fn own_cpu(c: &Counters) -> CpuWindow {
    CpuWindow { on_cpu_ns: c.on_cpu_ns as i64, user_ticks: c.user_ns, system_ticks: c.system_ns }
}

impl EbpfProbe {
    /// The exact part of a read (see `Probe::snap`).
    fn snapshot(&mut self) -> Result<Snap, ProbeError> {
        let (first, last, cpus_used) = self.flush()?;
        // After the flush: every event up to the window's end is in the ring.
        let events = self.drain_events();
        let tracked = self.tracked()?;
        let frozen = self.frozen(&tracked)?;
        Ok(Snap { first, last, cpus_used, events, tracked, frozen })
    }
}

impl Probe for EbpfProbe {
    fn columns(&self) -> Vec<Column> {
        let mut c = columns(self.io, self.programs.names());
        c.extend(self.figures.columns());
        c.extend(self.system.columns());
        c.extend(self.cgroup.iter().flat_map(CgroupFigures::columns));
        if self.runq_latency.is_some() {
            c.extend(runq::RunqLatency::columns());
        }
        c
    }

    fn add_root(&mut self, pid: i32, _since_start: bool) -> Result<(), ProbeError> {
        let before: HashSet<u32> = self.tracked()?.into_iter().map(|(t, _)| t).collect();
        load::add_root(&mut self.bpf, &self.proc, pid, self.follow_children)?;
        self.tracked.invalidate();
        // Its threads may be running now, where no flush looks.
        self.flush_all = true;
        // The kernel counts from now; so must the /proc-based figures (of
        // processes not tracked before).
        let pids =
            if self.follow_children { crate::probe::procfs::tree::descendants(&self.proc, pid) } else { vec![pid] };
        let stats: Vec<_> =
            pids.iter().filter(|&&p| !before.contains(&(p as u32))).filter_map(|&p| self.proc.stat(p).ok()).collect();
        self.figures.prime(&stats);
        Ok(())
    }

    fn snap(&mut self) -> Result<(), ProbeError> {
        self.snap = Some(self.snapshot()?);
        Ok(())
    }

    fn read(&mut self) -> Result<Reading, ProbeError> {
        let snap = match self.snap.take() {
            Some(s) => s,
            None => self.snapshot()?,
        };
        let Snap { first, last, cpus_used, mut events, tracked, frozen } = snap;
        for e in &mut events {
            self.learn(e);
        }
        let mut sum = Counters::default();
        let mut stats = Vec::new();
        let mut processes = Vec::new();
        let mut retire = Vec::new();
        let mut exited_now = 0;
        let mut kernel = if (self.memory || self.stat) && tracked.len() >= PROCESS_ITER_MIN_PROCESSES {
            self.kernel_processes()
        } else {
            census::KernelProcesses::default()
        };
        for (&(tgid, info), now) in tracked.iter().zip(&frozen) {
            let d = self.deltas.observe(tgid, *now);
            let own = d;
            log::trace!("epoch {} tgid {tgid}: frozen on_cpu {} delta {}", self.epoch, now.on_cpu_ns, d.on_cpu_ns);
            sum = counters::add(&sum, &d);
            // Its row when /proc no longer shows it: its identity as last
            // known, this window's counters, no momentary figures.
            let io_on = self.io;
            let unseen = |known: Option<crate::probe::ProcessWindow>| {
                let base = known.unwrap_or_else(|| crate::probe::ProcessWindow {
                    pid: tgid as i32,
                    ppid: info.parent_tgid as i32,
                    start_unixtime: f64::NAN,
                    ..Default::default()
                });
                let (rb, wb) = if io_on {
                    (own.io_bytes[io::READ] as f64, own.io_bytes[io::WRITE] as f64)
                } else {
                    (f64::NAN, f64::NAN)
                };
                crate::probe::ProcessWindow {
                    cpu: own_cpu(&own),
                    rss_bytes: f64::NAN,
                    num_threads: f64::NAN,
                    read_bytes: rb,
                    write_bytes: wb,
                    faults_minor: own.faults_minor as f64,
                    faults_major: own.faults_major as f64,
                    ..base
                }
            };
            // Exited, or moved out of the target cgroup: final now.
            if info.flags & (TRACKED_EXITED | TRACKED_LEFT) != 0 {
                if self.exited.insert(tgid) {
                    // Exited during this window: its last part is in it,
                    // however short its life was.
                    exited_now += 1;
                    processes.push(unseen(self.known.get(&tgid).cloned()));
                } else {
                    retire.push(tgid);
                }
                continue;
            }
            // The process's stat (memory, threads, children's and guest
            // CPU; the kernel side has the CPU split): from the process
            // iterator where it gave it, else /proc/<pid>/stat, which also
            // says whether it is gone. Not the main thread's
            // /proc/<pid>/task/<pid>/stat: its guest time is that thread's
            // only, where a VMM runs its virtual CPUs in other threads.
            let stat = match kernel.stats.remove(&(tgid as i32)) {
                Some(s) => Ok(s),
                None => self.proc.stat(tgid as i32),
            };
            match stat {
                Ok(stat) => {
                    let cpu = own_cpu(&own);
                    let rw = self.io.then_some((own.io_bytes[io::READ], own.io_bytes[io::WRITE]));
                    let w = self.host.window(&stat, cpu, rw, Some((own.faults_minor, own.faults_major)));
                    self.known.insert(tgid, w.clone());
                    processes.push(w);
                    stats.push(stat);
                }
                // Exiting (its exit not yet told): the window's counters
                // still belong to it.
                Err(e) if e.is_gone() => processes.push(unseen(self.known.get(&tgid).cloned())),
                Err(e) => return Err(ProbeError::Procfs(e)),
            }
        }
        for tgid in retire {
            self.retire(tgid)?;
        }
        let present = !stats.is_empty() || exited_now > 0;
        let oom_kills = events.iter().filter(|e| e.kind == EventKind::OomKill).count();
        let mut extra = self.measures(&sum, last - first, cpus_used, present, oom_kills);
        let sockets = if self.census { Sockets::Counted(self.run_census()) } else { Sockets::Scan };
        self.figures.use_kernel(kernel.figures);
        let (tree, by_process) = self.figures.read(&stats, sockets)?;
        extra.extend(tree);
        for p in &mut processes {
            if let Some(g) = by_process.get(&p.pid) {
                p.extras = g.extras.clone();
                // Without kernel-side syscall counting: rchar/wchar.
                if let (false, Some((r, w))) = (self.io, g.rw) {
                    (p.read_bytes, p.write_bytes) = (r as f64, w as f64);
                }
            }
        }
        extra.extend(self.system.read()?);
        extra.extend(self.cgroup.iter_mut().flat_map(CgroupFigures::read));
        let threads = match &mut self.threads {
            Some(t) => {
                let set: HashSet<u32> = tracked.iter().map(|(tgid, _)| *tgid).collect();
                t.read(&mut self.bpf, &self.proc, &set, self.epoch - 1)?
            }
            None => Vec::new(),
        };
        let runq_hist = match &mut self.runq_latency {
            Some(r) => {
                let w = r.read(self.epoch - 1)?;
                extra.extend(w.measures());
                w.buckets
            }
            None => Vec::new(),
        };
        Ok(Reading {
            runq_hist,
            threads,
            mono_ns: first + (last - first) / 2,
            cpu: own_cpu(&sum),
            num_processes: stats.len() as u32,
            extra,
            processes,
            present,
            events,
        })
    }
}
