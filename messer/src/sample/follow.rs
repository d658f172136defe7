//! Following the target over time: a fixed process (`--pid`, a launched
//! command), whatever `--pid-command` prints, every process of a comm
//! (`--comm`), or every process of a cgroup (`--cgroup`). Adds new target processes to the probes and reports
//! `target_found`, `target_lost` and `target_restarted` events.

use std::collections::BTreeSet;
use std::os::fd::BorrowedFd;

use crate::probe::procfs::ProcRoot;
use crate::probe::{EventKind, Probe, ProbeError, ProcEvent};
use crate::targets::cgroup::CgroupDir;
use crate::targets::launch::RunAs;
use crate::targets::{Target, pid_command};

/// When `Follow::poll` is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// Before the baseline read.
    Start,
    /// Between the wait and a read.
    BeforeRead,
    /// After a read.
    AfterRead,
}

/// What is followed.
enum How {
    /// One process; the recording ends when it exits.
    Fixed,
    /// The process a command prints; followed again whenever it is gone.
    /// `pending` is a run under way on its own thread.
    PidCommand { cmd: String, run_as: Option<RunAs>, problem: Option<String>, pending: Option<pid_command::Pending> },
    /// Every process of this comm; `scan` says whether /proc is scanned on
    /// every tick (procfs) or only at the start (ebpf matches execs in the kernel).
    Comm { name: String, scan: bool, scanned: bool },
    /// Every process in a cgroup; `scan` says whether cgroup.procs is read
    /// before every read (procfs) or only at the start (ebpf decides
    /// membership in the kernel and tells moves as events).
    Cgroup { dir: CgroupDir, scan: bool },
}

/// The target processes of a recording.
pub struct Follow {
    how: How,
    proc: ProcRoot,
    /// The watched process (fixed targets and `--pid-command`).
    current: Option<Target>,
    /// Target processes alive now.
    roots: BTreeSet<i32>,
    /// A target was lost and none has been found since.
    lost: bool,
    /// Target processes present at some time in the current window.
    in_window: BTreeSet<i32>,
}

impl Follow {
    /// A fixed target: found already.
    pub fn fixed(target: Target, proc: ProcRoot) -> (Self, ProcEvent) {
        let ev = ProcEvent::now(EventKind::TargetFound, target.pid, target.ppid, &target.comm);
        let roots = BTreeSet::from([target.pid]);
        (
            Follow {
                how: How::Fixed,
                proc,
                current: Some(target),
                roots: roots.clone(),
                lost: false,
                in_window: roots,
            },
            ev,
        )
    }

    pub fn pid_command(cmd: String, run_as: Option<RunAs>, proc: ProcRoot) -> Self {
        let how = How::PidCommand { cmd, run_as, problem: None, pending: None };
        Follow { how, proc, current: None, roots: BTreeSet::new(), lost: false, in_window: BTreeSet::new() }
    }

    /// `scan_every_tick`: procfs mode (no kernel-side exec matching).
    pub fn comm(name: String, scan_every_tick: bool, proc: ProcRoot) -> Self {
        let how = How::Comm { name, scan: scan_every_tick, scanned: false };
        Follow { how, proc, current: None, roots: BTreeSet::new(), lost: false, in_window: BTreeSet::new() }
    }

    /// `scan_every_tick`: procfs mode (no kernel-side membership).
    pub fn cgroup(dir: CgroupDir, scan_every_tick: bool, proc: ProcRoot) -> Self {
        let roots: BTreeSet<i32> = dir.members().into_iter().collect();
        let how = How::Cgroup { dir, scan: scan_every_tick };
        Follow { how, proc, current: None, roots: roots.clone(), lost: false, in_window: roots }
    }

    /// The processes to start the probes with.
    pub fn initial(&self) -> Vec<i32> {
        self.roots.iter().copied().collect()
    }

    /// Does the recording end when the target exits?
    pub fn ends_with_target(&self) -> bool {
        matches!(self.how, How::Fixed)
    }

    /// Readable when the watched process exits.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.current.as_ref().map(Target::pidfd)
    }

    /// The target pid in use (the lowest if several); 0 if none.
    pub fn pid(&self) -> i32 {
        self.roots.first().copied().unwrap_or(0)
    }

    /// The target pid of the window that ends now: the lowest of those
    /// present at any time in it; 0 if none. Starts the next window.
    pub fn window_pid(&mut self) -> i32 {
        let pid = self.in_window.first().copied().unwrap_or(0);
        self.in_window = self.roots.clone();
        pid
    }

    /// The watched process exited (its pidfd became readable).
    pub fn watched_exited(&mut self) -> Vec<ProcEvent> {
        match self.current.take() {
            Some(t) => {
                log::info!("target pid {} ({}) exited", t.pid, t.comm);
                self.lose(t.pid, t.ppid, &t.comm).into_iter().collect()
            }
            None => Vec::new(),
        }
    }

    fn lose(&mut self, pid: i32, ppid: i32, comm: &str) -> Option<ProcEvent> {
        if !self.roots.remove(&pid) {
            return None;
        }
        if self.roots.is_empty() {
            self.lost = true;
        }
        Some(ProcEvent::now(EventKind::TargetLost, pid, ppid, comm))
    }

    fn find(&mut self, pid: i32, ppid: i32, comm: &str, unixtime: f64) -> Option<ProcEvent> {
        if !self.roots.insert(pid) {
            return None;
        }
        self.in_window.insert(pid);
        let kind = if std::mem::take(&mut self.lost) { EventKind::TargetRestarted } else { EventKind::TargetFound };
        log::info!("{} pid {pid} ({comm})", if kind == EventKind::TargetFound { "found" } else { "following new" });
        let mut e = ProcEvent::now(kind, pid, ppid, comm);
        if unixtime.is_finite() {
            e.unixtime = unixtime;
        }
        Some(e)
    }

    /// Looks for new targets and adds them to every probe: runs
    /// `--pid-command` when there is no target (after a read: the target
    /// counts from the next window on), scans /proc for `--comm` (just
    /// before a read: a process that started in the window counts whole).
    /// `when` says which of the two moments this is (both at the start).
    pub fn poll(&mut self, probes: &mut [Box<dyn Probe>], when: Moment) -> Result<Vec<ProcEvent>, ProbeError> {
        // A tick's reads begin here (see `ProcRoot::sharing_reads`).
        if when != Moment::AfterRead {
            self.proc.new_tick();
        }
        let mut lost = Vec::new();
        let found: Vec<Target> = match &mut self.how {
            How::Fixed => return Ok(Vec::new()),
            How::PidCommand { cmd, run_as, problem, pending } => {
                if self.current.is_some() || when == Moment::BeforeRead {
                    return Ok(Vec::new());
                }
                // The command runs on its own thread: the sampler waits for
                // it only before the baseline read, never between windows.
                let started = match pending.take() {
                    Some(p) => Ok(p),
                    None => pid_command::Pending::start(cmd, run_as.as_ref()),
                };
                let result = match started {
                    Ok(p) if when == Moment::Start => p.wait(),
                    Ok(p) => match p.try_result() {
                        Some(r) => r,
                        None => {
                            *pending = Some(p);
                            return Ok(Vec::new());
                        }
                    },
                    Err(e) => Err(e),
                };
                let got = result.and_then(|pid| Target::attach(&self.proc, pid).map_err(|e| e.to_string()));
                match got {
                    Ok(t) => {
                        *problem = None;
                        vec![t]
                    }
                    Err(why) => {
                        // Said once per kind of problem, not every interval.
                        if problem.as_deref() != Some(why.as_str()) {
                            log::warn!("--pid-command {why}; trying again every interval");
                            *problem = Some(why);
                        }
                        // The next run starts now, its result taken at the
                        // next read: a run after every read, as the README
                        // says. (It used to start only at the read after,
                        // one run every other read: a restarted service
                        // was found up to three intervals late.) A command
                        // that cannot start is tried again then.
                        if when != Moment::Start {
                            *pending = pid_command::Pending::start(cmd, run_as.as_ref()).ok();
                        }
                        Vec::new()
                    }
                }
            }
            How::Comm { name, scan, scanned } => {
                if (!*scan && *scanned) || when == Moment::AfterRead {
                    return Ok(Vec::new());
                }
                *scanned = true;
                let name = name.clone();
                // Targets gone since: lost before any new one is found.
                let gone: Vec<i32> = self.roots.iter().copied().filter(|&p| self.proc.stat(p).is_err()).collect();
                for pid in gone {
                    lost.extend(self.lose(pid, 0, &name));
                }
                let mut found = Vec::new();
                for pid in self.proc.pids().unwrap_or_default() {
                    if self.roots.contains(&pid) {
                        continue;
                    }
                    if self.proc.stat(pid).is_ok_and(|s| s.comm == *name)
                        && let Ok(t) = Target::attach(&self.proc, pid)
                    {
                        found.push(t);
                    }
                }
                found
            }
            How::Cgroup { dir, scan } => {
                if !(*scan && when == Moment::BeforeRead) && when != Moment::Start {
                    return Ok(Vec::new());
                }
                let members: BTreeSet<i32> = dir.members().into_iter().collect();
                // Gone: exited, or moved out (which stops counting now).
                let gone: Vec<i32> = self.roots.difference(&members).copied().collect();
                for pid in gone {
                    let comm = match self.proc.stat(pid) {
                        Ok(s) => {
                            for p in probes.iter_mut() {
                                p.drop_root(pid);
                            }
                            s.comm
                        }
                        Err(_) => String::new(),
                    };
                    lost.extend(self.lose(pid, 0, &comm));
                }
                let new: Vec<i32> = members.difference(&self.roots).copied().collect();
                new.into_iter().filter_map(|pid| Target::attach(&self.proc, pid).ok()).collect()
            }
        };
        let since_start = matches!(self.how, How::Comm { .. } | How::Cgroup { .. }) && when == Moment::BeforeRead;
        let mut events = lost;
        for t in found {
            for p in probes.iter_mut() {
                match p.add_root(t.pid, since_start) {
                    Ok(()) => {}
                    // It exited meanwhile: nothing to follow.
                    Err(ProbeError::Procfs(e)) if e.is_gone() => {}
                    Err(e) => return Err(e),
                }
            }
            events.extend(self.find(t.pid, t.ppid, &t.comm, f64::NAN));
            if matches!(self.how, How::PidCommand { .. }) {
                self.current = Some(t);
            }
        }
        Ok(events)
    }

    /// Notes what the first probe saw: kernel comm matches are new targets
    /// (added to the `others` probes), exits of target processes lose them.
    pub fn observe(&mut self, events: &[ProcEvent], others: &mut [Box<dyn Probe>]) -> Vec<ProcEvent> {
        let mut out = Vec::new();
        for e in events {
            match e.kind {
                EventKind::Match | EventKind::Join => {
                    for p in others.iter_mut() {
                        if let Err(err) = p.add_root(e.pid, false) {
                            log::debug!("pid {} not added to the second probe: {err}", e.pid);
                        }
                    }
                    out.extend(self.find(e.pid, e.ppid, &e.comm, e.unixtime));
                }
                EventKind::Leave => {
                    for p in others.iter_mut() {
                        p.drop_root(e.pid);
                    }
                    out.extend(self.lose(e.pid, e.ppid, &e.comm).map(|mut l| {
                        l.unixtime = e.unixtime;
                        l
                    }));
                }
                // The watched process runs a new program: its events carry
                // the new name (a launched command is found before its exec).
                EventKind::Exec => {
                    if let Some(t) = self.current.as_mut().filter(|t| t.pid == e.pid && !e.comm.is_empty()) {
                        t.comm.clone_from(&e.comm);
                    }
                }
                // The watched process is lost through its pidfd.
                EventKind::Exit if self.current.as_ref().is_none_or(|t| t.pid != e.pid) => {
                    out.extend(self.lose(e.pid, e.ppid, &e.comm).map(|mut l| {
                        l.unixtime = e.unixtime;
                        l
                    }));
                }
                _ => {}
            }
        }
        out
    }
}
