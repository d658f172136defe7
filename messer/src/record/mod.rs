//! One recording, start to end: target → probe → sampler → writer → file.

pub mod meta;
pub mod output;

use crate::cli::{Cli, Mode};
use crate::probe::Probe;
use crate::probe::ebpf::{EbpfError, EbpfOptions, EbpfProbe};
use crate::probe::procfs::{ProcRoot, ProcfsProbe};
use crate::sample::sampler::{self, Stop};
use crate::sample::{Sample, processes};
use crate::signals::Signals;
use crate::sink::hdf5::{self as h5, Table};
use crate::sink::writer::{QUEUE_ROWS, Writer};
use crate::target::{Target, launch};

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

/// Tables, in the writer's order.
const TIMESERIES: usize = 0;
const PROCESSES: usize = 1;
const PROCESS_INFO: usize = 2;

/// Shortest interval accepted.
const MIN_INTERVAL_S: f64 = 0.001;

fn interval_ns(interval: f64) -> Result<u64, RecordError> {
    if !interval.is_finite() || interval < MIN_INTERVAL_S {
        return Err(RecordError::Usage(format!(
            "--interval must be a number of seconds of at least {MIN_INTERVAL_S}, got {interval}"
        )));
    }
    Ok((interval * 1e9).round() as u64)
}

/// Starts the probe the mode asks for; returns it with the mode's name.
fn start_probe(cli: &Cli, target: &Target, proc: &ProcRoot) -> Result<(Box<dyn Probe>, &'static str), RecordError> {
    let follow = !cli.no_children;
    let reads = crate::probe::procfs::process::Reads { smaps: !cli.no_pss, sockets: true };
    let procfs = || Box::new(ProcfsProbe::new(proc.clone(), target.pid, follow, reads)) as Box<dyn Probe>;
    let ebpf = || {
        let opts = EbpfOptions {
            max_processes: cli.max_processes,
            max_threads: cli.max_threads,
            follow_children: follow,
            count_io: cli.io_syscalls,
            reads,
        };
        EbpfProbe::start(target.pid, opts, proc.clone()).map(|p| Box::new(p) as Box<dyn Probe>)
    };
    match cli.mode {
        Mode::Procfs => Ok((procfs(), "procfs")),
        Mode::Ebpf => match ebpf() {
            Ok(p) => Ok((p, "ebpf")),
            Err(e @ (EbpfError::NoPermission(_) | EbpfError::Tracefs(_) | EbpfError::Btf(_))) => {
                Err(RecordError::Usage(e.to_string()))
            }
            Err(e) => Err(RecordError::Runtime(e.to_string())),
        },
        Mode::Auto => match ebpf() {
            Ok(p) => Ok((p, "ebpf")),
            Err(e) => {
                log::warn!("eBPF unavailable, recording in procfs mode: {e}");
                Ok((procfs(), "procfs"))
            }
        },
    }
}

/// The process to record: given by pid, or launched and held before exec.
fn find_target(cli: &Cli, proc: &ProcRoot) -> Result<(Target, Option<launch::Paused>), RecordError> {
    let usage = |e: crate::target::TargetError| RecordError::Usage(e.to_string());
    match (cli.pid, cli.command.is_empty()) {
        (Some(pid), true) => Ok((Target::attach(proc, pid).map_err(usage)?, None)),
        (None, false) => {
            let paused = launch::spawn_paused(&cli.command, launch::sudo_invoker().as_ref())
                .map_err(|e| RecordError::Launch(e.to_string(), e.exit_code()))?;
            match Target::attach(proc, paused.pid) {
                Ok(t) => Ok((t, Some(paused))),
                Err(e) => {
                    paused.abandon();
                    Err(RecordError::Runtime(e.to_string()))
                }
            }
        }
        _ => Err(RecordError::Usage(
            "say what to record: --pid PID, or a command after `--` (e.g. `messer -- sleep 1`)".into(),
        )),
    }
}

fn duration_ns(d: Option<f64>) -> Result<Option<u64>, RecordError> {
    match d {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some((s * 1e9).round() as u64)),
        Some(s) => Err(RecordError::Usage(format!("--duration must be a positive number of seconds, got {s}"))),
    }
}

/// Records until the target exits, a stop signal, or `--duration`.
pub fn record(cli: &Cli) -> Result<Outcome, RecordError> {
    let interval_ns = interval_ns(cli.interval)?;
    let duration_ns = duration_ns(cli.duration)?;
    if cli.max_processes == 0 || cli.max_threads == 0 {
        return Err(RecordError::Usage("--max-processes and --max-threads must be at least 1".into()));
    }
    if let Some(path) = &cli.output {
        output::prepare(path, cli.force).map_err(RecordError::Usage)?;
    }
    if !cli.no_realtime {
        crate::sample::realtime::raise();
    }
    let proc = ProcRoot::default();
    // Before any other thread exists, so that all inherit the mask (and
    // before a launched command is forked, which needs a single thread).
    let signals = Signals::block().map_err(|e| RecordError::Runtime(format!("cannot set up signals: {e}")))?;
    let (target, mut paused) = find_target(cli, &proc)?;
    let abandon = |paused: Option<launch::Paused>| {
        if let Some(p) = paused {
            p.abandon();
        }
    };

    let path = cli.output.clone().unwrap_or_else(|| output::default_path(target.pid));
    if cli.output.is_none()
        && let Err(e) = output::prepare(&path, cli.force)
    {
        abandon(paused);
        return Err(RecordError::Usage(e));
    }
    let file = match h5::create_file(&path) {
        Ok(f) => f,
        Err(e) => {
            abandon(paused);
            return Err(RecordError::Usage(format!("{e}; choose another --output")));
        }
    };
    output::chown_to_invoker(&path);

    let (mut probe, mode) = match start_probe(cli, &target, &proc) {
        Ok(p) => p,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            abandon(paused);
            return Err(e);
        }
    };
    let runtime = |e: h5::Hdf5Error| RecordError::Runtime(format!("writing {}: {e}", path.display()));
    let schema = Sample::schema(probe.columns());
    let table = Table::create(&file, "messer_timeseries", "messer time series", schema).map_err(runtime)?;
    for (name, value) in meta::attributes(target.pid, cli.interval, &cli.label, mode) {
        table.set_attr(name, &value).map_err(runtime)?;
    }
    if !cli.command.is_empty() {
        table.set_attr("messer_launched_command", &h5::AttrValue::Str(cli.command.join(" "))).map_err(runtime)?;
    }
    let procs = Table::create(&file, "messer_processes", "messer per-process time series", processes::schema())
        .map_err(runtime)?;
    let info = Table::create(&file, "messer_process_info", "messer processes seen", processes::info_schema())
        .map_err(runtime)?;
    let what = if cli.command.is_empty() { target.comm.clone() } else { cli.command.join(" ") };
    log::info!("recording pid {} ({what}) in {mode} mode every {} s into {}", target.pid, cli.interval, path.display());
    let writer = Writer::spawn(file, vec![table, procs, info], QUEUE_ROWS)
        .map_err(|e| RecordError::Runtime(format!("cannot start the writer thread: {e}")))?;

    // Used by both the start hook and the sampling callback.
    let registry = std::cell::RefCell::new(processes::Registry::new(proc.clone()));
    let mut launch_error = None;
    // After the baseline read: let a launched command run.
    let start = || match paused.as_mut().map(launch::Paused::release) {
        Some(Err(e)) => {
            let msg = e.to_string();
            launch_error = Some(e);
            Err(msg)
        }
        Some(Ok(())) => {
            registry.borrow_mut().note(target.pid, crate::sample::clock::realtime_ns() as f64 / 1e9);
            Ok(())
        }
        None => Ok(()),
    };
    let result = sampler::run(probe.as_mut(), &target, &signals, interval_ns, duration_ns, start, |s| {
        writer.send(TIMESERIES, s.row())?;
        for row in s.process_rows() {
            writer.send(PROCESSES, row)?;
        }
        for row in registry.borrow_mut().observe(&s.processes, s.unixtime) {
            writer.send(PROCESS_INFO, row)?;
        }
        Ok(())
    });
    let mut child_status = None;
    let child_exit = match (&paused, &result) {
        (Some(p), Ok(Stop::TargetExited)) => match launch::wait(p.pid) {
            Ok(exit) => {
                let (name, v) = match exit {
                    launch::Exit::Code(c) => ("messer_child_exit_code", c),
                    launch::Exit::Signal(s) => ("messer_child_exit_signal", s),
                };
                let _ = writer.set_attr(TIMESERIES, name, h5::AttrValue::I64(i64::from(v)));
                log::info!("the command exited: {exit:?}");
                child_status = Some(exit);
                Some(exit.code())
            }
            Err(e) => {
                log::warn!("cannot learn the command's exit status: {e}");
                None
            }
        },
        (Some(_), _) => {
            log::info!("the command is still running (pid {}); it is no longer recorded", target.pid);
            None
        }
        _ => None,
    };
    // A launched command's status as a number: its exit code, or minus the signal.
    let status = child_status.map(|e| match e {
        launch::Exit::Code(c) => (target.pid, f64::from(c)),
        launch::Exit::Signal(s) => (target.pid, -f64::from(s)),
    });
    for row in registry.into_inner().finish(status) {
        let _ = writer.send(PROCESS_INFO, row);
    }
    // Whatever happened, write what was sampled.
    // A failed write says why, and whether the file system is full.
    let written = writer.finish().map_err(|e| {
        let full = output::free_bytes(&path).is_some_and(|b| b < 1 << 20);
        let hint = if full { "the file system is full; " } else { "" };
        RecordError::Runtime(format!(
            "writing {} failed ({e}); {hint}the rows written before are in the file",
            path.display()
        ))
    });
    drop(probe);
    if let Some(e) = launch_error {
        // Nothing of the command was recorded: leave no file behind.
        let _ = std::fs::remove_file(&path);
        return Err(RecordError::Launch(e.to_string(), e.exit_code()));
    }
    match result {
        Ok(Stop::TargetExited) => log::info!("pid {} exited", target.pid),
        Ok(Stop::Signal(sig)) => log::info!("stopped by signal {sig}"),
        Ok(Stop::Duration) => log::info!("--duration elapsed"),
        // The writer's own error says more than "the writer stopped".
        Err(sampler::SamplerError::Sink(_)) if written.is_err() => {}
        Err(e) => return Err(RecordError::Runtime(e.to_string())),
    }
    let rows = written?;
    log::info!("wrote {rows} rows to {}", path.display());
    if !cli.no_compress {
        let t0 = std::time::Instant::now();
        match h5::compact::compact(&path) {
            Ok(()) => log::info!("compressed {} in {:.2} s", path.display(), t0.elapsed().as_secs_f64()),
            Err(e) => log::warn!("could not compress {} ({e}); it stays uncompressed and complete", path.display()),
        }
    }
    Ok(Outcome { rows, child_exit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_checked() {
        assert_eq!(interval_ns(0.5).unwrap(), 500_000_000);
        assert_eq!(interval_ns(0.001).unwrap(), 1_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 0.0009] {
            assert!(matches!(interval_ns(bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }
}
