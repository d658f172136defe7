//! The procfs probe: CPU time of the tracked tree from /proc alone.
//!
//! On-CPU time is the sum of every thread's `schedstat` run time (ns, exact at
//! the moment of reading); new threads and processes count from their birth.
//! A thread that exits during a window takes the part of its run time since
//! the previous read with it: /proc no longer shows it (the eBPF probe does
//! not have this gap). A child process that a process of the tree reaped
//! (waited for) is not lost: the kernel adds its whole CPU time to the
//! parent's cutime/cstime, so the window also gets the parent's gain in
//! those minus what was already counted for each child it reaped (see
//! `reaped`); a child that lived and was reaped between two reads counts
//! whole.

pub mod cgroup;
pub mod figures;
pub mod host;
pub mod kv;
pub mod process;
pub mod system;
pub mod threads;
pub mod ticks;
pub mod tree;

use std::collections::HashMap;

use crate::probe::delta::DeltaTracker;
use crate::probe::{CpuWindow, EventKind, Measure, Probe, ProbeError, ProcEvent, Reading, Span};
// /proc access is a leaf module (targets use it too).
pub use crate::base::proc::{ProcRoot, ReadError, parse, root};
use ticks::SplitTicks;

/// The exact part of a read (see `Probe::snap`).
struct Snap {
    stats: Vec<parse::Stat>,
    cpus: Vec<CpuWindow>,
    gains: Gains,
    mono_ns: u64,
    ticks: (u64, u64),
}

/// What the tree's threads gained in a window, from their schedstat.
#[derive(Debug, Default, Clone, Copy)]
struct Gains {
    on_cpu_ns: u64,
    /// Switch-ins (`pcount`).
    switches: u64,
    /// Time runnable on a run queue (`run_delay`).
    runq_wait_ns: u64,
    /// CPU of reaped children not counted before (see `reaped`): signed, as
    /// the parent's cutime/cstime are whole ticks.
    reaped_ns: i64,
}

/// Reads the tracked tree from /proc.
pub struct ProcfsProbe {
    snap: Option<Snap>,
    proc: ProcRoot,
    /// Target processes: pid and start time (identity).
    roots: Vec<(i32, u64)>,
    /// Every process of the tree at the previous read: pid -> (start time,
    /// comm, ppid). Kept tracked by identity even when reparented.
    members: HashMap<i32, (u64, String, i32)>,
    /// Unix time of the previous read (for fork events); NaN before it.
    prev_unixtime: f64,
    follow_children: bool,
    run_ns: DeltaTracker<(i32, u64, i32)>,
    switches: DeltaTracker<(i32, u64, i32)>,
    run_delay: DeltaTracker<(i32, u64, i32)>,
    /// CLOCK_MONOTONIC ns when the previous snapshot began.
    prev_snap_start_ns: u64,
    /// Each process's cutime + cstime (reaped children's CPU, ticks).
    reaped: DeltaTracker<(i32, u64)>,
    /// Each process's run time known so far (ns): its threads' run time when
    /// first seen plus every gain since. When it is reaped by a process of
    /// the tree, the parent's cutime/cstime grow by its whole lifetime; this
    /// part of it was counted already.
    counted: HashMap<(i32, u64), u64>,
    split: SplitTicks,
    figures: figures::TreeFigures,
    system: system::SystemProbe,
    /// The target cgroup's own accounting (`--cgroup`).
    cgroup: Option<cgroup::CgroupFigures>,
    /// `--threads`: each thread's window.
    threads: Option<threads::ThreadFigures>,
    host: host::Host,
}

impl ProcfsProbe {
    /// A probe for the trees of `roots` (more can be added with `add_root`).
    pub fn new(
        proc: ProcRoot,
        roots: &[i32],
        follow_children: bool,
        reads: process::Reads,
        cgroup: Option<std::path::PathBuf>,
    ) -> Self {
        let mut p = Self {
            cgroup: cgroup.map(cgroup::CgroupFigures::new),
            threads: None,
            snap: None,
            figures: figures::TreeFigures::new(proc.clone(), reads, figures::FromProc::ALL),
            system: system::SystemProbe::new(proc.clone(), "/sys"),
            host: host::Host::new(&proc),
            proc,
            roots: Vec::new(),
            members: HashMap::new(),
            prev_unixtime: f64::NAN,
            follow_children,
            run_ns: DeltaTracker::default(),
            switches: DeltaTracker::default(),
            run_delay: DeltaTracker::default(),
            prev_snap_start_ns: 0,
            reaped: DeltaTracker::default(),
            counted: HashMap::new(),
            split: SplitTicks::default(),
        };
        for &r in roots {
            // A root that is gone already is simply not there.
            let _ = p.track(r, false);
        }
        p
    }

    /// Also each thread's window (`--threads`).
    pub fn with_threads(mut self) -> Self {
        self.threads = Some(threads::ThreadFigures::default());
        self
    }

    /// Adds target `pid`. Processes of its tree are baselined now (only what
    /// they gain from now on counts); with `since_start`, those that
    /// started after the previous read count from their start.
    fn track(&mut self, pid: i32, since_start: bool) -> Result<(), ReadError> {
        let stat = self.proc.stat(pid)?;
        if self.roots.contains(&(pid, stat.starttime)) {
            return Ok(());
        }
        self.roots.push((pid, stat.starttime));
        let pids = if self.follow_children { tree::descendants(&self.proc, pid) } else { vec![pid] };
        let mut stats = Vec::with_capacity(pids.len());
        for p in pids {
            let Ok(stat) = self.proc.stat(p) else { continue };
            if self.members.get(&p).is_some_and(|m| m.0 == stat.starttime) {
                // Tracked already (in another target's tree).
                continue;
            }
            // Born since the previous read: all of it belongs to this window.
            if since_start && self.host.start_unixtime(&stat) + 1.0 / self.host.ticks_per_second > self.prev_unixtime {
                continue;
            }
            for tid in self.proc.tasks(p).unwrap_or_default() {
                if let Ok(s) = self.proc.task_schedstat(p, tid) {
                    let key = (p, stat.starttime, tid);
                    self.run_ns.prime(key, s.run_ns);
                    self.switches.prime(key, s.pcount);
                    self.run_delay.prime(key, s.run_delay_ns);
                }
            }
            self.split.prime(&stat);
            self.reaped.prime((p, stat.starttime), stat.cutime + stat.cstime);
            self.members.entry(p).or_insert_with(|| (stat.starttime, stat.comm.clone(), stat.ppid));
            stats.push(stat);
        }
        self.figures.prime(&stats);
        Ok(())
    }

    /// The processes to read: the roots and every process seen in the tree
    /// before, with their descendants now.
    fn walk(&self) -> Vec<i32> {
        let mut start: Vec<i32> = self.roots.iter().map(|r| r.0).collect();
        if !self.follow_children {
            return start;
        }
        start.extend(self.members.keys());
        tree::descendants_of(&self.proc, &start)
    }

    /// Is `stat` the process we knew under its pid (not a reused pid)?
    fn same_identity(&self, stat: &parse::Stat) -> bool {
        let known = self.roots.iter().find(|r| r.0 == stat.pid).map(|r| r.1);
        let known = known.or_else(|| self.members.get(&stat.pid).map(|m| m.0));
        known.is_none_or(|start| start == stat.starttime)
    }

    /// Fork, exec and exit events between the previous tree and `now`; the
    /// tree becomes `now`. Exits and execs are dated when noticed, forks at
    /// the process's start time.
    fn events(&mut self, stats: &[parse::Stat], now_unixtime: f64) -> Vec<ProcEvent> {
        let now: HashMap<i32, (u64, String, i32)> =
            stats.iter().map(|s| (s.pid, (s.starttime, s.comm.clone(), s.ppid))).collect();
        let mut events = Vec::new();
        for s in stats {
            let started = self.host.start_unixtime(s);
            match self.members.get(&s.pid) {
                Some((start, comm, _)) if *start == s.starttime => {
                    if *comm != s.comm {
                        events.push(ProcEvent { unixtime: now_unixtime, ..event(EventKind::Exec, s) });
                    }
                }
                // New in the tree: a fork if it started in this window
                // from a process of the tree.
                _ => {
                    let from_tree = self.members.contains_key(&s.ppid) || now.contains_key(&s.ppid);
                    if from_tree && started >= self.prev_unixtime - 1.0 / self.host.ticks_per_second {
                        events.push(ProcEvent { unixtime: started, ..event(EventKind::Fork, s) });
                    }
                }
            }
        }
        for (pid, (start, comm, ppid)) in &self.members {
            if now.get(pid).is_none_or(|n| n.0 != *start) {
                let mut e = ProcEvent::now(EventKind::Exit, *pid, *ppid, comm);
                e.unixtime = now_unixtime;
                events.push(e);
            }
        }
        self.roots.retain(|r| now.get(&r.0).is_some_and(|n| n.0 == r.1));
        self.members = now;
        self.prev_unixtime = now_unixtime;
        events.sort_by(|a, b| a.unixtime.total_cmp(&b.unixtime));
        events
    }

    /// Adds process `pid`'s threads' gains to `gains`; returns its stat and
    /// its own CPU window.
    fn read_process(&mut self, pid: i32, gains: &mut Gains) -> Result<(parse::Stat, CpuWindow), ReadError> {
        let stat = self.proc.stat(pid)?;
        if !self.same_identity(&stat) {
            // A reused pid: the process we tracked is gone.
            return Err(ReadError::Gone(format!("{pid}").into()));
        }
        let mut own_ns = 0;
        let mut run_now = 0;
        let tids = self.proc.tasks(pid)?;
        for &tid in &tids {
            match self.proc.task_schedstat(pid, tid) {
                Ok(s) => {
                    run_now += s.run_ns;
                    let key = (pid, stat.starttime, tid);
                    let (run, switches, wait) = match self.took_over(key, s.run_ns, &tids) {
                        // The exec'ing thread now holds the leader's id and
                        // start time: it continues from its own old counters.
                        Some(old) => {
                            let base = |t: &DeltaTracker<_>| t.previous(&old).unwrap_or(0);
                            let (r, c, d) = (base(&self.run_ns), base(&self.switches), base(&self.run_delay));
                            (
                                self.run_ns.observe_from(key, s.run_ns, r),
                                self.switches.observe_from(key, s.pcount, c),
                                self.run_delay.observe_from(key, s.run_delay_ns, d),
                            )
                        }
                        None => (
                            self.run_ns.observe(key, s.run_ns),
                            self.switches.observe(key, s.pcount),
                            self.run_delay.observe(key, s.run_delay_ns),
                        ),
                    };
                    own_ns += run;
                    gains.switches += switches;
                    gains.runq_wait_ns += wait;
                    if let Some(t) = &mut self.threads {
                        t.observe(&self.proc, key, run, wait);
                    }
                }
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(e),
            }
        }
        gains.on_cpu_ns += own_ns;
        match self.counted.entry((pid, stat.starttime)) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(run_now);
            }
            std::collections::hash_map::Entry::Occupied(mut e) => *e.get_mut() += own_ns,
        }
        let (user_ticks, system_ticks) = self.split.observe(&stat);
        let own = CpuWindow { on_cpu_ns: i64::try_from(own_ns).unwrap_or(i64::MAX), user_ticks, system_ticks };
        Ok((stat, own))
    }
}

impl ProcfsProbe {
    /// When a non-main thread calls exec, the kernel kills the other threads
    /// and the exec'ing thread takes over the leader's thread id and start
    /// time (de_thread), so its counters appear under the old leader's key.
    /// That shows as a leader whose run time grew by more than the time
    /// since the previous read, which one thread cannot do. Returns the key
    /// of the vanished thread of the same process whose counters it carries
    /// on (the closest below its value and within that time).
    fn took_over(&self, key: (i32, u64, i32), run_ns: u64, tids: &[i32]) -> Option<(i32, u64, i32)> {
        let (pid, start, tid) = key;
        if tid != pid {
            return None;
        }
        let elapsed = crate::base::clock::monotonic_ns().saturating_sub(self.prev_snap_start_ns);
        // Tolerance: schedstat of a running thread lags up to a tick.
        let most = elapsed.saturating_add(10_000_000);
        let prev = self.run_ns.previous(&key)?;
        if run_ns.saturating_sub(prev) <= most {
            return None;
        }
        self.run_ns
            .previous_where(|k| k.0 == pid && k.1 == start && k.2 != pid && !tids.contains(&k.2))
            .into_iter()
            .filter(|(_, v)| *v <= run_ns && run_ns - v <= most)
            .max_by_key(|(_, v)| *v)
            .map(|(k, _)| k)
    }

    /// The CPU of children reaped in this window that was not counted
    /// before, added to each reaper's window; returns the tree's total.
    /// A reaped child's whole lifetime is added to its parent's cutime and
    /// cstime (in ns; /proc shows the sum in whole ticks, so the figure is
    /// signed and exact to a tick over any span). Of a child the tree had
    /// seen, the part counted already (`counted`) is taken off: what is left
    /// is the run time of its threads since they were last read. A child
    /// born and reaped between two reads counts whole. Children reaped by a
    /// process outside the tree (a root's parent, or init after their parent
    /// died) stay uncounted after their last read.
    fn reaped(&mut self, stats: &[parse::Stat], cpus: &mut [CpuWindow]) -> i64 {
        let now: HashMap<i32, u64> = stats.iter().map(|s| (s.pid, s.starttime)).collect();
        // Counted run time of the vanished children of each present process.
        let mut seen_part: HashMap<i32, u64> = HashMap::new();
        for (&pid, &(start, _, ppid)) in &self.members {
            if now.get(&pid) == Some(&start) {
                continue;
            }
            let counted = self.counted.remove(&(pid, start)).unwrap_or(0);
            if now.contains_key(&ppid) {
                *seen_part.entry(ppid).or_default() += counted;
            }
        }
        let tick_ns = 1e9 / self.host.ticks_per_second;
        let mut total = 0i64;
        for (s, cpu) in stats.iter().zip(cpus.iter_mut()) {
            let ticks = self.reaped.observe((s.pid, s.starttime), s.cutime + s.cstime);
            let gained = (ticks as f64 * tick_ns).round() as i64;
            let extra = gained - i64::try_from(seen_part.get(&s.pid).copied().unwrap_or(0)).unwrap_or(i64::MAX);
            cpu.on_cpu_ns += extra;
            total += extra;
        }
        total
    }

    /// The exact part of a read (see `Probe::snap`).
    fn snapshot(&mut self) -> Result<Snap, ProbeError> {
        let span = Span::start();
        let started_ns = crate::base::clock::monotonic_ns();
        let pids = self.walk();
        let mut gains = Gains::default();
        let mut stats = Vec::with_capacity(pids.len());
        let mut cpus = Vec::with_capacity(pids.len());
        for pid in pids {
            match self.read_process(pid, &mut gains) {
                Ok((stat, cpu)) => {
                    stats.push(stat);
                    cpus.push(cpu);
                }
                Err(e) if e.is_gone() => {}
                Err(e) => return Err(ProbeError::Procfs(e)),
            }
        }
        gains.reaped_ns = self.reaped(&stats, &mut cpus);
        // The CPU figures' instant; the momentary ones read later follow it.
        let mono_ns = span.end();
        self.run_ns.commit();
        self.switches.commit();
        self.run_delay.commit();
        if let Some(t) = &mut self.threads {
            t.commit();
        }
        self.reaped.commit();
        let ticks = self.split.commit();
        self.prev_snap_start_ns = started_ns;
        Ok(Snap { stats, cpus, gains, mono_ns, ticks })
    }
}

impl Probe for ProcfsProbe {
    fn columns(&self) -> Vec<crate::base::table::Column> {
        let mut c = vec![
            crate::probe::measure::float("proc_cpu_num_used"),
            crate::probe::measure::float("proc_ctx_switch_rate_hz"),
            crate::probe::measure::float("proc_runq_wait_percent"),
            crate::probe::measure::float("proc_runq_wait_mean_ms"),
        ];
        c.extend(self.figures.columns());
        c.extend(self.system.columns());
        c.extend(self.cgroup.iter().flat_map(cgroup::CgroupFigures::columns));
        c
    }

    fn add_root(&mut self, pid: i32, since_start: bool) -> Result<(), ProbeError> {
        Ok(self.track(pid, since_start)?)
    }

    fn drop_root(&mut self, pid: i32) {
        // Not read again, and not told as an exit.
        self.roots.retain(|r| r.0 != pid);
        self.members.remove(&pid);
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
        let Snap { stats, cpus, gains, mono_ns, ticks: (user_ticks, system_ticks) } = snap;
        // Distinct CPUs the processes' main threads were last on.
        let used: std::collections::HashSet<u32> = stats.iter().filter_map(|s| s.processor).collect();
        let (wait, waits) = (gains.runq_wait_ns as f64, gains.switches as f64);
        let mut extra = vec![
            Measure::Value(used.len() as f64),
            Measure::PerSecond(waits),
            Measure::PercentOfWindow(wait),
            Measure::Mean { sum: wait, count: waits, scale: 1e-6 },
        ];
        let (tree, rw) = self.figures.read(&stats, figures::Sockets::Scan)?;
        extra.extend(tree);
        extra.extend(self.system.read()?);
        extra.extend(self.cgroup.iter_mut().flat_map(cgroup::CgroupFigures::read));
        let processes = stats
            .iter()
            .zip(cpus)
            .map(|(s, cpu)| {
                let g = rw.get(&s.pid);
                let mut w = self.host.window(s, cpu, g.and_then(|g| g.rw), g.map(|g| g.faults));
                if let Some(g) = g {
                    w.extras = g.extras.clone();
                }
                w
            })
            .collect();
        let events = self.events(&stats, crate::base::clock::wall_of(mono_ns) as f64 / 1e9);
        let present = !stats.is_empty();
        if !present {
            extra[..4].fill(Measure::Missing);
        }
        Ok(Reading {
            runq_hist: Vec::new(),
            threads: self.threads.as_mut().map(threads::ThreadFigures::take).unwrap_or_default(),
            present,
            events,
            mono_ns,
            cpu: CpuWindow {
                on_cpu_ns: i64::try_from(gains.on_cpu_ns).unwrap_or(i64::MAX).saturating_add(gains.reaped_ns),
                user_ticks,
                system_ticks,
            },
            num_processes: stats.len() as u32,
            extra,
            processes,
        })
    }
}

fn event(kind: EventKind, s: &parse::Stat) -> ProcEvent {
    ProcEvent { unixtime: f64::NAN, kind, pid: s.pid, ppid: s.ppid, comm: s.comm.clone(), exit_status: f64::NAN }
}
