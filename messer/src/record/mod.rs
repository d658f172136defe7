//! One recording, start to end: target → probe → sampler → writer → file.
//! `config` checks the command line once; `record` composes the parts.

pub mod config;
pub mod meta;
pub mod output;
mod session;
pub mod status;
mod tables;

use std::path::PathBuf;

use crate::cli::{Cli, Mode};
use crate::probe::Probe;
use crate::probe::ebpf::{EbpfError, EbpfProbe};
use crate::probe::procfs::{ProcRoot, ProcfsProbe};
use crate::sample::follow::Follow;
use crate::sample::processes;
use crate::sample::sampler;
use crate::signals::Signals;
use crate::sink::exporters::Exporters;
use crate::sink::hdf5 as h5;
use crate::sink::writer::{QUEUE_ROWS, Rotation, Writer};
use crate::targets::{Target, launch};
use config::{RecordConfig, Spec};
use session::Session;

/// How a recording failed: bad input (exit 2), a runtime failure (exit 1),
/// or a command that could not be launched (126/127, as a shell would).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
    #[error("{0}")]
    Launch(String, u8),
}

/// How a recording ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    pub rows: usize,
    /// A launched command's exit status (messer exits with it).
    pub child_exit: Option<u8>,
}

/// Undoes a recording that did not start: a launched command held before
/// its exec is killed, a file created is removed. Released once the writer
/// owns the file.
struct Cleanup {
    paused: Option<launch::Paused>,
    path: Option<PathBuf>,
}

impl Cleanup {
    /// The recording has started: nothing to undo; the held command is the
    /// caller's.
    fn release(mut self) -> Option<launch::Paused> {
        self.path = None;
        self.paused.take()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
        if let Some(p) = self.paused.take() {
            p.abandon();
        }
    }
}

/// A started probe and its mode's name.
type NamedProbe = (Box<dyn Probe>, &'static str);

/// The probes the mode asks for, each with its mode's name; `both` gives
/// ebpf first, then procfs.
fn start_probes(cfg: &RecordConfig, roots: &[i32], proc: &ProcRoot) -> Result<Vec<NamedProbe>, RecordError> {
    let procfs = || {
        (
            {
                let p = ProcfsProbe::new(
                    proc.clone(),
                    roots,
                    cfg.follow_children,
                    cfg.reads,
                    cfg.cgroup().map(|c| c.path.clone()),
                );
                Box::new(if cfg.threads { p.with_threads() } else { p }) as Box<dyn Probe>
            },
            "procfs",
        )
    };
    let ebpf =
        || EbpfProbe::start(roots, cfg.ebpf.clone(), proc.clone()).map(|p| (Box::new(p) as Box<dyn Probe>, "ebpf"));
    let required = || match ebpf() {
        Ok(p) => Ok(p),
        Err(e @ (EbpfError::NoPermission(_) | EbpfError::Tracefs(_) | EbpfError::Btf(_))) => {
            Err(RecordError::Usage(e.to_string()))
        }
        Err(e) => Err(RecordError::Runtime(e.to_string())),
    };
    match cfg.mode {
        Mode::Procfs => Ok(vec![procfs()]),
        Mode::Ebpf => Ok(vec![required()?]),
        Mode::Both => Ok(vec![required()?, procfs()]),
        Mode::Auto => match ebpf() {
            Ok(p) => Ok(vec![p]),
            Err(e) => {
                log::warn!("eBPF unavailable, recording in procfs mode: {e}");
                Ok(vec![procfs()])
            }
        },
    }
}

/// The fixed process to record: given by pid, or launched and held before exec.
fn find_target(spec: &Spec, proc: &ProcRoot) -> Result<(Option<Target>, Option<launch::Paused>), RecordError> {
    let usage = |e: crate::targets::TargetError| RecordError::Usage(e.to_string());
    match spec {
        Spec::Pid(pid) => Ok((Some(Target::attach(proc, *pid).map_err(usage)?), None)),
        Spec::Launch(cmd) => {
            let paused = launch::spawn_paused(cmd, launch::sudo_invoker().as_ref())
                .map_err(|e| RecordError::Launch(e.to_string(), e.exit_code()))?;
            match Target::attach(proc, paused.pid) {
                Ok(t) => Ok((Some(t), Some(paused))),
                Err(e) => {
                    paused.abandon();
                    Err(RecordError::Runtime(e.to_string()))
                }
            }
        }
        Spec::PidCommand(_) | Spec::Comm(..) | Spec::Cgroup(_) => Ok((None, None)),
    }
}

/// The follower of the targets: a fixed one (with the event that it was
/// found), the pid a command prints, or every process of a name.
fn follower(cfg: &RecordConfig, target: Option<Target>, proc: &ProcRoot) -> (Follow, Option<crate::probe::ProcEvent>) {
    match (&cfg.spec, target) {
        (_, Some(t)) => {
            let (f, e) = Follow::fixed(t, proc.clone());
            (f, Some(e))
        }
        (Spec::PidCommand(cmd), None) => (Follow::pid_command(cmd.clone(), launch::sudo_invoker(), proc.clone()), None),
        (Spec::Cgroup(c), None) => (Follow::cgroup(c.clone(), cfg.mode == Mode::Procfs, proc.clone()), None),
        (_, None) => {
            (Follow::comm(cfg.comm().unwrap_or_default().to_string(), cfg.mode == Mode::Procfs, proc.clone()), None)
        }
    }
}

/// The output file's path: `--output`, or a name made from the target
/// (checked here, since only now is it known).
fn output_path(cfg: &RecordConfig, target: Option<&Target>) -> Result<PathBuf, RecordError> {
    if let Some(p) = &cfg.output.path {
        return Ok(p.clone());
    }
    let name = match (&cfg.spec, target) {
        (Spec::Comm(c, _), _) => c.clone(),
        (Spec::Cgroup(c), _) => {
            format!("cgroup-{}", c.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default())
        }
        (_, Some(t)) => t.pid.to_string(),
        _ => "pid-command".to_string(),
    };
    let path = output::default_path(&name);
    output::prepare(&path, cfg.output.force).map_err(RecordError::Usage)?;
    Ok(path)
}

/// The labels every exported series has: the target, its program's name,
/// the host, the mode.
fn labels(cfg: &RecordConfig, comm: Option<String>, mode: &str) -> [(&'static str, String); 4] {
    let comm = match (&cfg.spec, comm) {
        (Spec::Comm(c, _), _) => c.clone(),
        // Held before its exec, the child still has messer's comm.
        (Spec::Launch(c), _) => c.first().and_then(|p| p.rsplit('/').next()).unwrap_or("").chars().take(15).collect(),
        (_, Some(c)) => c,
        _ => String::new(),
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    [("target", cfg.spec.label()), ("comm", comm), ("host", host), ("messer_mode", mode.to_string())]
}

/// The writer thread for `file` and its tables, rotating if asked.
fn start_writer(
    cfg: &RecordConfig,
    file: hdf5::File,
    path: &std::path::Path,
    specs: Vec<tables::TableSpec>,
) -> Result<Writer, RecordError> {
    let runtime = |e: h5::Hdf5Error| RecordError::Runtime(format!("writing {}: {e}", path.display()));
    let all = tables::create(&file, &specs, 0).map_err(runtime)?;
    let rotation = cfg.output.rotate_bytes.map(|limit| Rotation {
        limit_bytes: limit,
        retain_bytes: cfg.output.retain_bytes,
        base: path.to_path_buf(),
        compress: cfg.output.compress,
        open: Box::new(move |p: &std::path::Path, index: u64| {
            let f = h5::create_file(p)?;
            output::chown_to_invoker(p);
            let t = tables::create(&f, &specs, index)?;
            Ok((f, t))
        }),
    });
    Writer::spawn(file, path.to_path_buf(), all, QUEUE_ROWS, rotation)
        .map_err(|e| RecordError::Runtime(format!("cannot start the writer thread: {e}")))
}

/// Records until a fixed target exits, a stop signal, or `--duration`.
/// How many per-process files to keep open with descriptor limit `limit`:
/// 1024 descriptors stay for everything else, and at most 4096 are kept
/// (each holds a page of kernel memory for its text: 16 MiB at most).
fn kept_files_cap(limit: u64) -> usize {
    limit.saturating_sub(1024).min(4096) as usize
}

pub fn record(cli: &Cli) -> Result<Outcome, RecordError> {
    let cfg = RecordConfig::from_cli(cli)?;
    if let Some(path) = &cfg.output.path {
        output::prepare(path, cfg.output.force).map_err(RecordError::Usage)?;
    }
    if cfg.realtime {
        crate::sample::realtime::raise();
    }
    // Both probes read the same files on each tick: once is enough.
    let proc = if cfg.mode == Mode::Both { ProcRoot::default().sharing_reads() } else { ProcRoot::default() };
    // Before any other thread exists, so that all inherit the mask (and
    // before a launched command is forked, which needs a single thread).
    let signals = Signals::block().map_err(|e| RecordError::Runtime(format!("cannot set up signals: {e}")))?;
    let (target, paused) = find_target(&cfg.spec, &proc)?;
    // After a launched command is forked: it keeps the limit messer had.
    let proc = proc.keeping_files(kept_files_cap(crate::base::proc::root::raise_fd_limit()));
    // From here an early return kills the held command and removes the file.
    let mut cleanup = Cleanup { paused, path: None };
    let path = output_path(&cfg, target.as_ref())?;
    let file = h5::create_file(&path).map_err(|e| RecordError::Usage(format!("{e}; choose another --output")))?;
    cleanup.path = Some(path.clone());
    output::chown_to_invoker(&path);
    let comm = target.as_ref().map(|t| t.comm.clone());
    let (mut follow, first_event) = follower(&cfg, target, &proc);
    let started = start_probes(&cfg, &follow.initial(), &proc)?;
    let mode = if started.len() == 2 { "both" } else { started[0].1 };
    // Auto mode fell back to procfs: /proc is scanned for --comm every tick.
    if let (Some(c), "procfs", false) = (cfg.comm(), mode, cfg.mode == Mode::Procfs) {
        follow = Follow::comm(c.to_string(), true, proc.clone());
    }
    // ... and cgroup.procs for --cgroup.
    if let (Some(c), "procfs", false) = (cfg.cgroup(), mode, cfg.mode == Mode::Procfs) {
        follow = Follow::cgroup(c.clone(), true, proc.clone());
    }
    let mut probes: Vec<Box<dyn Probe>> = started.into_iter().map(|(p, _)| p).collect();
    let specs = tables::specs(&cfg, &probes, follow.pid(), mode);
    let optional = tables::Optional::of(&specs);
    let schema = specs[0].schema.clone();
    let labels = labels(&cfg, comm, mode);
    let exporters =
        Exporters::start(&cfg.exporters, &schema, &labels).map_err(|e| RecordError::Usage(e.to_string()))?;
    let writer = start_writer(&cfg, file, &path, specs)?;
    if let Some(mut e) = first_event {
        // A launched command is found while held before its exec, under
        // messer's name: the event names the program it runs.
        if cfg.command().is_some() && !labels[1].1.is_empty() {
            e.comm.clone_from(&labels[1].1);
        }
        let _ = writer.send(tables::EVENTS, e.row());
    }
    let mut paused = cleanup.release();
    let now = || crate::base::clock::realtime_ns() as f64 / 1e9;
    let registry = processes::Registry::new(proc.clone(), now());
    let shown = path.clone();
    let mut session = Session::new(writer, exporters, registry, path, cfg.quiet, cfg.output.compress, optional);
    let mut launch_error = None;
    let registry = session.registry.clone();
    // After the baseline read: counting has begun (what the log line says),
    // and a launched command may run.
    let start = || {
        log::info!("recording {} in {mode} mode every {} s into {}", cfg.spec.what(), cfg.interval_s, shown.display());
        match paused.as_mut().map(|p| (p.pid, p.release())) {
            Some((_, Err(e))) => {
                let msg = e.to_string();
                launch_error = Some(e);
                Err(msg)
            }
            Some((pid, Ok(()))) => {
                registry.borrow_mut().note(pid, now(), cfg.command().unwrap_or_default());
                Ok(())
            }
            None => Ok(()),
        }
    };
    let result = sampler::run(&mut probes, &mut follow, &signals, cfg.interval_ns, cfg.duration_ns, start, |s, e| {
        session.tick(s, e)
    });
    // The start hook's share of the registry, so that the session has it alone.
    drop(registry);
    session.finish(result, paused.as_ref(), launch_error)
}
