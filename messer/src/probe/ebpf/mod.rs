//! The eBPF probe: loads messer's BPF programs, seeds the tracked set with the
//! target, and reads exact per-process on-CPU time from the maps.

pub mod flush;
pub mod tracefs;

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd as _, AsRawFd as _, RawFd};

use aya::maps::{HashMap as BpfHashMap, MapData, MapError, PerCpuHashMap};
use aya::programs::{RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use messer_common::{CONFIG_SYMBOL, Config, ProcCounters, TRACKED_EXITED, Tracked};

use crate::probe::procfs::ProcRoot;
use crate::probe::procfs::ticks::SplitTicks;
use crate::probe::{CpuWindow, Probe, ProbeError, Reading};

/// The BPF object built from `messer-ebpf` by build.rs.
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/messer"));

/// What can go wrong with the eBPF probe.
#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error(
        "no permission to load BPF programs ({0}); run messer as root (sudo), or use --mode procfs"
    )]
    NoPermission(String),
    #[error("{0}")]
    Tracefs(String),
    #[error("loading the BPF programs failed: {0}")]
    Load(String),
    #[error("reading the BPF maps failed: {0}")]
    Map(String),
    #[error("running the flush program on CPU {cpu} failed: {source}")]
    Flush { cpu: u32, source: std::io::Error },
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
        EbpfError::Load(chain(&e))
    }
}

fn chain(e: &dyn std::error::Error) -> String {
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
#[derive(Debug, Clone, Copy)]
pub struct EbpfOptions {
    /// Capacity of the tracked-set and counter maps.
    pub max_processes: u32,
    /// Track new child processes of tracked processes.
    pub follow_children: bool,
}

/// The loaded programs and what the probe remembers between reads.
pub struct EbpfProbe {
    bpf: Ebpf,
    flush_fd: RawFd,
    cpus: Vec<u32>,
    proc: ProcRoot,
    /// Last cumulative on-CPU ns per tracked tgid.
    cumulative: HashMap<u32, u64>,
    /// Tgids seen exited at the previous read: retired at the next one, when
    /// their final switch-out has surely been counted.
    exited: HashSet<u32>,
    split: SplitTicks,
}

fn tracepoint_config(follow_children: bool) -> Result<Config, EbpfError> {
    let root = tracefs::root()?;
    let sw = tracefs::fields(&root, "sched", "sched_switch")?;
    let nt = tracefs::fields(&root, "task", "task_newtask")?;
    let ex = tracefs::fields(&root, "sched", "sched_process_exit")?;
    Ok(Config {
        switch_next_pid: tracefs::offset(&sw, "sched", "sched_switch", "next_pid", 4)?,
        newtask_pid: tracefs::offset(&nt, "task", "task_newtask", "pid", 4)?,
        newtask_clone_flags: tracefs::offset(&nt, "task", "task_newtask", "clone_flags", 8)?,
        exit_pid: tracefs::offset(&ex, "sched", "sched_process_exit", "pid", 4)?,
        // Older kernels have no group_dead: then the leader's exit counts.
        exit_group_dead: ex.get("group_dead").filter(|f| f.size == 1).map_or(u32::MAX, |f| f.offset),
        follow_children: u32::from(follow_children),
    })
}

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF maps to it.
fn raise_memlock() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK: {}", std::io::Error::last_os_error());
    }
}

/// A flush pass over all CPUs that took longer than this is repeated.
const QUICK_FLUSH_NS: u64 = 200_000;
/// At most this many flush passes per read.
const FLUSH_TRIES: usize = 5;

/// BPF_NOEXIST: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;

/// Adds the target's existing descendants to the tracked set. Runs after the
/// programs are attached, so a process forked from then on is added by the
/// kernel; walked twice to catch forks by a parent not yet inserted.
fn seed_descendants(bpf: &mut Ebpf, proc: &ProcRoot, target: i32) -> Result<(), EbpfError> {
    let map = bpf.map_mut("TRACKED").ok_or_else(|| EbpfError::Load("no map TRACKED".into()))?;
    let mut tracked: BpfHashMap<&mut MapData, u32, Tracked> = BpfHashMap::try_from(map).map_err(EbpfError::load)?;
    for _ in 0..2 {
        for pid in crate::probe::procfs::tree::descendants(proc, target).into_iter().skip(1) {
            let parent = proc.stat(pid).map(|s| s.ppid as u32).unwrap_or(0);
            match tracked.insert(pid as u32, Tracked { parent_tgid: parent, flags: 0 }, BPF_NOEXIST) {
                Ok(()) => {}
                Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) => log::warn!("could not track existing child {pid}: {e}"),
            }
        }
    }
    Ok(())
}

impl EbpfProbe {
    /// Loads and attaches the programs and starts tracking `target`.
    pub fn start(target: i32, opts: EbpfOptions, proc: ProcRoot) -> Result<Self, EbpfError> {
        raise_memlock();
        let cfg = tracepoint_config(opts.follow_children)?;
        let mut bpf = EbpfLoader::new()
            .override_global(CONFIG_SYMBOL, &cfg, true)
            .map_max_entries("TRACKED", opts.max_processes)
            .map_max_entries("COUNTERS", opts.max_processes)
            .load(BPF_OBJECT)
            .map_err(EbpfError::load)?;
        {
            let map = bpf.map_mut("TRACKED").ok_or_else(|| EbpfError::Load("no map TRACKED".into()))?;
            let mut tracked: BpfHashMap<_, u32, Tracked> = BpfHashMap::try_from(map).map_err(EbpfError::load)?;
            tracked.insert(target as u32, Tracked::default(), 0).map_err(EbpfError::load)?;
        }
        for (prog, category, name) in [
            ("sched_switch", "sched", "sched_switch"),
            ("task_newtask", "task", "task_newtask"),
            ("sched_process_exit", "sched", "sched_process_exit"),
        ] {
            let p: &mut TracePoint = bpf
                .program_mut(prog)
                .ok_or_else(|| EbpfError::Load(format!("no program {prog}")))?
                .try_into()
                .map_err(EbpfError::load)?;
            p.load().map_err(EbpfError::load)?;
            p.attach(category, name).map_err(EbpfError::load)?;
        }
        let flush: &mut RawTracePoint = bpf
            .program_mut("messer_flush")
            .ok_or_else(|| EbpfError::Load("no program messer_flush".into()))?
            .try_into()
            .map_err(EbpfError::load)?;
        flush.load().map_err(EbpfError::load)?;
        let flush_fd = flush.fd().map_err(EbpfError::load)?.as_fd().as_raw_fd();
        if opts.follow_children {
            seed_descendants(&mut bpf, &proc, target)?;
        }
        let cpus = aya::util::online_cpus().map_err(|(what, e)| EbpfError::Load(format!("{what}: {e}")))?;
        Ok(Self {
            bpf,
            flush_fd,
            cpus,
            proc,
            cumulative: HashMap::new(),
            exited: HashSet::new(),
            split: SplitTicks::default(),
        })
    }

    fn tracked(&self) -> Result<Vec<(u32, Tracked)>, EbpfError> {
        let map = self.bpf.map("TRACKED").ok_or_else(|| EbpfError::Map("no map TRACKED".into()))?;
        let tracked: BpfHashMap<&MapData, u32, Tracked> =
            BpfHashMap::try_from(map).map_err(|e| EbpfError::Map(e.to_string()))?;
        tracked.iter().collect::<Result<Vec<_>, _>>().map_err(|e| EbpfError::Map(e.to_string()))
    }

    fn on_cpu_ns(&self, tgids: &[(u32, Tracked)]) -> Result<Vec<u64>, EbpfError> {
        let map = self.bpf.map("COUNTERS").ok_or_else(|| EbpfError::Map("no map COUNTERS".into()))?;
        let counters: PerCpuHashMap<&MapData, u32, ProcCounters> =
            PerCpuHashMap::try_from(map).map_err(|e| EbpfError::Map(e.to_string()))?;
        tgids
            .iter()
            .map(|(tgid, _)| match counters.get(tgid, 0) {
                Ok(per_cpu) => Ok(per_cpu.iter().map(|c| c.on_cpu_ns).sum()),
                // Not yet switched out or flushed since it was tracked.
                Err(MapError::KeyNotFound) => Ok(0),
                Err(e) => Err(EbpfError::Map(e.to_string())),
            })
            .collect()
    }

    /// Drops a process whose final counters have been read.
    fn retire(&mut self, tgid: u32) -> Result<(), EbpfError> {
        let map = self.bpf.map_mut("TRACKED").ok_or_else(|| EbpfError::Map("no map TRACKED".into()))?;
        let mut tracked: BpfHashMap<&mut MapData, u32, Tracked> =
            BpfHashMap::try_from(map).map_err(|e| EbpfError::Map(e.to_string()))?;
        let _ = tracked.remove(&tgid);
        let map = self.bpf.map_mut("COUNTERS").ok_or_else(|| EbpfError::Map("no map COUNTERS".into()))?;
        let mut counters: PerCpuHashMap<&mut MapData, u32, ProcCounters> =
            PerCpuHashMap::try_from(map).map_err(|e| EbpfError::Map(e.to_string()))?;
        let _ = counters.remove(&tgid);
        self.cumulative.remove(&tgid);
        self.exited.remove(&tgid);
        Ok(())
    }
}

impl Probe for EbpfProbe {
    fn read(&mut self) -> Result<Reading, ProbeError> {
        // If this thread is preempted between CPUs, the CPUs' boundaries
        // drift apart; flushing again brings all of them to a new instant
        // (re-crediting is harmless), so repeat until a pass is quick.
        let mut mono_ns = 0;
        for _ in 0..FLUSH_TRIES {
            let start = crate::sample::clock::monotonic_ns();
            for &cpu in &self.cpus {
                flush::run_on_cpu(self.flush_fd, cpu).map_err(|source| EbpfError::Flush { cpu, source })?;
            }
            let end = crate::sample::clock::monotonic_ns();
            mono_ns = start + (end - start) / 2;
            if end - start <= QUICK_FLUSH_NS {
                break;
            }
        }
        let tracked = self.tracked()?;
        let values = self.on_cpu_ns(&tracked)?;
        let mut on_cpu_ns = 0;
        let mut num_processes = 0;
        let mut retire = Vec::new();
        for (&(tgid, info), &now) in tracked.iter().zip(&values) {
            let before = self.cumulative.insert(tgid, now).unwrap_or(0);
            // A counter that went backwards was recreated for a new process
            // that reused the tgid: all of it is new.
            on_cpu_ns += now.checked_sub(before).unwrap_or(now);
            if info.flags & TRACKED_EXITED != 0 {
                if !self.exited.insert(tgid) {
                    retire.push(tgid);
                }
                continue;
            }
            num_processes += 1;
            match self.proc.stat(tgid as i32) {
                Ok(stat) => self.split.observe(&stat),
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(ProbeError::Procfs(e)),
            }
        }
        for tgid in retire {
            self.retire(tgid)?;
        }
        let (user_ticks, system_ticks) = self.split.commit();
        Ok(Reading { mono_ns, cpu: CpuWindow { on_cpu_ns, user_ticks, system_ticks }, num_processes })
    }
}
