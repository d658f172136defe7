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
use crate::target::Target;

/// How a recording failed: bad input (exit 2) or a runtime failure (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
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
    let reads = crate::probe::procfs::process::Reads { smaps: !cli.no_pss };
    let procfs = || Box::new(ProcfsProbe::new(proc.clone(), target.pid, follow, reads)) as Box<dyn Probe>;
    let ebpf = || {
        let opts = EbpfOptions {
            max_processes: cli.max_processes,
            max_threads: cli.max_threads,
            follow_children: follow,
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

/// Records until the target exits or a stop signal; returns the rows written.
pub fn record(cli: &Cli) -> Result<usize, RecordError> {
    let interval_ns = interval_ns(cli.interval)?;
    if cli.max_processes == 0 || cli.max_threads == 0 {
        return Err(RecordError::Usage("--max-processes and --max-threads must be at least 1".into()));
    }
    let proc = ProcRoot::default();
    let target = Target::attach(&proc, cli.pid).map_err(|e| RecordError::Usage(e.to_string()))?;
    // Before any other thread exists, so that all inherit the mask.
    let signals = Signals::block().map_err(|e| RecordError::Runtime(format!("cannot set up signals: {e}")))?;

    let path = cli.output.clone().unwrap_or_else(|| output::default_path(target.pid));
    output::prepare(&path, cli.force).map_err(RecordError::Usage)?;
    let file = h5::create_file(&path).map_err(|e| RecordError::Usage(format!("{e}; choose another --output")))?;
    output::chown_to_invoker(&path);

    let (mut probe, mode) = match start_probe(cli, &target, &proc) {
        Ok(p) => p,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    log::info!(
        "recording pid {} ({}) in {mode} mode every {} s into {}",
        target.pid,
        target.comm,
        cli.interval,
        path.display()
    );

    let runtime = |e: h5::Hdf5Error| RecordError::Runtime(format!("writing {}: {e}", path.display()));
    let schema = Sample::schema(probe.columns());
    let table = Table::create(&file, "messer_timeseries", "messer time series", schema).map_err(runtime)?;
    for (name, value) in meta::attributes(target.pid, cli.interval, &cli.label, mode) {
        table.set_attr(name, &value).map_err(runtime)?;
    }
    let procs = Table::create(&file, "messer_processes", "messer per-process time series", processes::schema())
        .map_err(runtime)?;
    let info = Table::create(&file, "messer_process_info", "messer processes seen", processes::info_schema())
        .map_err(runtime)?;
    let writer = Writer::spawn(file, vec![table, procs, info], QUEUE_ROWS)
        .map_err(|e| RecordError::Runtime(format!("cannot start the writer thread: {e}")))?;

    let mut registry = processes::Registry::new(proc.clone());
    let result = sampler::run(probe.as_mut(), &target, &signals, interval_ns, |s| {
        writer.send(TIMESERIES, s.row())?;
        for row in s.process_rows() {
            writer.send(PROCESSES, row)?;
        }
        for row in registry.observe(&s.processes, s.unixtime) {
            writer.send(PROCESS_INFO, row)?;
        }
        Ok(())
    });
    for row in registry.finish() {
        let _ = writer.send(PROCESS_INFO, row);
    }
    // Whatever happened, write what was sampled.
    let written = writer.finish().map_err(runtime);
    drop(probe);
    match result {
        Ok(Stop::TargetExited) => log::info!("pid {} exited", target.pid),
        Ok(Stop::Signal(sig)) => log::info!("stopped by signal {sig}"),
        Err(e) => return Err(RecordError::Runtime(e.to_string())),
    }
    let rows = written?;
    log::info!("wrote {rows} rows to {}", path.display());
    Ok(rows)
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
