//! One recording, start to end: target → probe → sampler → writer → file.

pub mod meta;
pub mod output;
pub mod status;

use crate::cli::{Cli, Mode};
use crate::probe::Probe;
use crate::probe::ProcEvent;
use crate::probe::ebpf::{EbpfError, EbpfOptions, EbpfProbe};
use crate::probe::procfs::{ProcRoot, ProcfsProbe};
use crate::sample::follow::Follow;
use crate::sample::sampler::{self, Stop};
use crate::sample::{Sample, processes};
use crate::signals::Signals;
use crate::sink::exporters::{ExporterOptions, Exporters};
use crate::sink::hdf5::{self as h5, Table};
use crate::sink::writer::{QUEUE_ROWS, Rotation, Writer};
use crate::targets::{Target, launch};

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
const EVENTS: usize = 3;
/// `--mode both`: the procfs measurement.
const PROCFS_TIMESERIES: usize = 4;

/// Shortest interval accepted.
const MIN_INTERVAL_S: f64 = 0.001;
/// Longest interval accepted: one day (longer windows say nothing a day's
/// would not, and the ns arithmetic stays far from u64's end).
const MAX_INTERVAL_S: f64 = 86_400.0;
/// Longest `--duration`: 100 years in ns fits u64 (584 years) with room for
/// the start time added to it.
const MAX_DURATION_S: f64 = 3.15e9;
/// Largest `--max-processes`/`--max-threads`: the kernel's PID_MAX_LIMIT
/// (no more tasks can exist), far below what a BPF hash map may hold.
const MAX_MAP_ENTRIES: u32 = 4 << 20;
/// Largest `--rotate-size`/`--retain-size` in MiB: an exbibyte.
const MAX_MIB: f64 = 1.0e12;

/// `value` seconds as ns if it lies in `[min, max]`, else the usage error
/// naming `option` and its range.
fn seconds_ns(option: &str, value: f64, min: f64, max: f64, min_open: bool) -> Result<u64, RecordError> {
    let low_ok = if min_open { value > min } else { value >= min };
    if value.is_finite() && low_ok && value <= max {
        return Ok((value * 1e9).round() as u64);
    }
    let low = if min_open { format!("more than {min}") } else { format!("at least {min}") };
    Err(RecordError::Usage(format!("{option} must be a number of seconds, {low} and at most {max}; got {value}")))
}

fn interval_ns(interval: f64) -> Result<u64, RecordError> {
    seconds_ns("--interval", interval, MIN_INTERVAL_S, MAX_INTERVAL_S, false)
}

fn map_entries(option: &str, n: u32) -> Result<u32, RecordError> {
    if (1..=MAX_MAP_ENTRIES).contains(&n) {
        Ok(n)
    } else {
        Err(RecordError::Usage(format!(
            "{option} must be from 1 to {MAX_MAP_ENTRIES} (the kernel's PID_MAX_LIMIT); got {n}"
        )))
    }
}

/// `--comm` as the kernel's NUL-padded comm.
fn comm_bytes(name: &str) -> Result<[u8; messer_common::COMM_LEN], RecordError> {
    let max = messer_common::COMM_LEN - 1;
    if name.is_empty() || name.len() > max || name.contains(['\0', '/']) {
        return Err(RecordError::Usage(format!(
            "--comm {name:?}: the kernel keeps at most {max} bytes of a program's name (see `ps -o comm`); \
             pass the name as ps shows it"
        )));
    }
    let mut b = [0; messer_common::COMM_LEN];
    b[..name.len()].copy_from_slice(name.as_bytes());
    Ok(b)
}

/// The exporters' options from the command line.
fn exporter_options(cli: &Cli) -> ExporterOptions {
    ExporterOptions {
        prometheus: cli.prometheus.clone(),
        prometheus_per_process: cli.prometheus_per_process,
        influx: cli.influx.as_ref().map(|url| crate::sink::influx::InfluxOptions {
            url: url.clone(),
            database: cli.influx_db.clone(),
            bucket: cli.influx_bucket.clone(),
            org: cli.influx_org.clone(),
            token: cli.influx_token.clone().or_else(|| std::env::var("MESSER_INFLUX_TOKEN").ok()),
        }),
    }
}

/// A started probe and its mode's name.
type NamedProbe = (Box<dyn Probe>, &'static str);

/// The probes the mode asks for, each with its mode's name; `both` gives
/// ebpf first, then procfs.
fn start_probes(cli: &Cli, roots: &[i32], proc: &ProcRoot) -> Result<Vec<NamedProbe>, RecordError> {
    let follow = !cli.no_children;
    let reads = crate::probe::procfs::process::Reads { smaps: !cli.no_pss, sockets: true };
    let procfs = || (Box::new(ProcfsProbe::new(proc.clone(), roots, follow, reads)) as Box<dyn Probe>, "procfs");
    let comm = cli.comm.as_deref().map(comm_bytes).transpose()?;
    let ebpf = || {
        let opts = EbpfOptions {
            max_processes: cli.max_processes,
            max_threads: cli.max_threads,
            follow_children: follow,
            count_io: cli.io_syscalls,
            reads,
            comm,
            bpf_stats: cli.bpf_stats,
        };
        EbpfProbe::start(roots, opts, proc.clone()).map(|p| (Box::new(p) as Box<dyn Probe>, "ebpf"))
    };
    let required = || match ebpf() {
        Ok(p) => Ok(p),
        Err(e @ (EbpfError::NoPermission(_) | EbpfError::Tracefs(_) | EbpfError::Btf(_))) => {
            Err(RecordError::Usage(e.to_string()))
        }
        Err(e) => Err(RecordError::Runtime(e.to_string())),
    };
    match cli.mode {
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

/// A table to create: name, title, columns and attributes.
#[derive(Clone)]
struct TableSpec {
    name: &'static str,
    title: &'static str,
    schema: crate::base::table::Schema,
    attrs: Vec<(&'static str, h5::AttrValue)>,
}

/// Creates `specs` in `file`; the first table carries `messer_series_index`.
fn create_tables(file: &hdf5::File, specs: &[TableSpec], index: u64) -> Result<Vec<Table>, h5::Hdf5Error> {
    let mut out = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let t = Table::create(file, s.name, s.title, s.schema.clone())?;
        for (n, v) in &s.attrs {
            t.set_attr(n, v)?;
        }
        if i == 0 {
            t.set_attr("messer_series_index", &h5::AttrValue::I64(index as i64))?;
        }
        out.push(t);
    }
    Ok(out)
}

/// `--rotate-size`/`--retain-size` in bytes, checked.
fn sizes(cli: &Cli) -> Result<(Option<u64>, Option<u64>), RecordError> {
    let mib = |v: f64, what: &str| {
        if v.is_finite() && (0.01..=MAX_MIB).contains(&v) {
            Ok((v * 1048576.0) as u64)
        } else {
            Err(RecordError::Usage(format!("{what} must be a number of MiB from 0.01 to {MAX_MIB:e}; got {v}")))
        }
    };
    let rotate = cli.rotate_size.map(|v| mib(v, "--rotate-size")).transpose()?;
    let retain = cli.retain_size.map(|v| mib(v, "--retain-size")).transpose()?;
    match (rotate, retain) {
        (None, Some(_)) => Err(RecordError::Usage("--retain-size needs --rotate-size".into())),
        (Some(a), Some(b)) if b < a => Err(RecordError::Usage(format!(
            "--retain-size ({} MiB) must be at least --rotate-size ({} MiB)",
            cli.retain_size.unwrap_or_default(),
            cli.rotate_size.unwrap_or_default()
        ))),
        r => Ok(r),
    }
}

/// What to record, as the user said it.
enum Spec<'a> {
    Pid(i32),
    Launch(&'a [String]),
    PidCommand(&'a str),
    Comm(&'a str),
}

fn spec(cli: &Cli) -> Result<Spec<'_>, RecordError> {
    match (cli.pid, &cli.pid_command, &cli.comm, cli.command.is_empty()) {
        (Some(pid), None, None, true) => Ok(Spec::Pid(pid)),
        (None, Some(c), None, true) if !c.trim().is_empty() => Ok(Spec::PidCommand(c)),
        (None, Some(_), None, true) => Err(RecordError::Usage("--pid-command is empty; give a shell command".into())),
        (None, None, Some(name), true) => {
            comm_bytes(name)?;
            Ok(Spec::Comm(name))
        }
        (None, None, None, false) => Ok(Spec::Launch(&cli.command)),
        (None, None, None, true) => Err(RecordError::Usage(
            "say what to record: --pid PID, --pid-command CMD, --comm NAME, or a command after `--` \
             (e.g. `messer -- sleep 1`)"
                .into(),
        )),
        _ => Err(RecordError::Usage("give one target: --pid, --pid-command, --comm or a command after `--`".into())),
    }
}

/// The fixed process to record: given by pid, or launched and held before exec.
fn find_target(spec: &Spec, proc: &ProcRoot) -> Result<Option<(Target, Option<launch::Paused>)>, RecordError> {
    let usage = |e: crate::targets::TargetError| RecordError::Usage(e.to_string());
    match spec {
        Spec::Pid(pid) => Ok(Some((Target::attach(proc, *pid).map_err(usage)?, None))),
        Spec::Launch(cmd) => {
            let paused = launch::spawn_paused(cmd, launch::sudo_invoker().as_ref())
                .map_err(|e| RecordError::Launch(e.to_string(), e.exit_code()))?;
            match Target::attach(proc, paused.pid) {
                Ok(t) => Ok(Some((t, Some(paused)))),
                Err(e) => {
                    paused.abandon();
                    Err(RecordError::Runtime(e.to_string()))
                }
            }
        }
        Spec::PidCommand(_) | Spec::Comm(_) => Ok(None),
    }
}

fn duration_ns(d: Option<f64>) -> Result<Option<u64>, RecordError> {
    d.map(|s| seconds_ns("--duration", s, 0.0, MAX_DURATION_S, true)).transpose()
}

/// Records until a fixed target exits, a stop signal, or `--duration`.
pub fn record(cli: &Cli) -> Result<Outcome, RecordError> {
    let interval_ns = interval_ns(cli.interval)?;
    let duration_ns = duration_ns(cli.duration)?;
    map_entries("--max-processes", cli.max_processes)?;
    map_entries("--max-threads", cli.max_threads)?;
    let spec = spec(cli)?;
    let (rotate_bytes, retain_bytes) = sizes(cli)?;
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
    let fixed = find_target(&spec, &proc)?;
    let (target_pid, mut paused) = match fixed {
        Some((t, p)) => (Some(t), p),
        None => (None, None),
    };
    let abandon = |paused: Option<launch::Paused>| {
        if let Some(p) = paused {
            p.abandon();
        }
    };
    let name = match (&spec, &target_pid) {
        (Spec::Comm(c), _) => (*c).to_string(),
        (_, Some(t)) => t.pid.to_string(),
        _ => "pid-command".to_string(),
    };
    let path = cli.output.clone().unwrap_or_else(|| output::default_path(&name));
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

    let target_comm = target_pid.as_ref().map(|t| t.comm.clone());
    let (mut follow, first_event) = match (&spec, target_pid) {
        (_, Some(t)) => {
            let (f, e) = Follow::fixed(t, proc.clone());
            (f, Some(e))
        }
        (Spec::PidCommand(cmd), None) => {
            (Follow::pid_command((*cmd).to_string(), launch::sudo_invoker(), proc.clone()), None)
        }
        (_, None) => (Follow::comm(cli.comm.clone().unwrap_or_default(), cli.mode == Mode::Procfs, proc.clone()), None),
    };
    let started = match start_probes(cli, &follow.initial(), &proc) {
        Ok(p) => p,
        Err(e) => {
            drop(file);
            let _ = std::fs::remove_file(&path);
            abandon(paused);
            return Err(e);
        }
    };
    let mode = if started.len() == 2 { "both" } else { started[0].1 };
    // Auto mode fell back to procfs: /proc is scanned for --comm every tick.
    if started[0].1 == "procfs" && cli.comm.is_some() && cli.mode != Mode::Procfs {
        follow = Follow::comm(cli.comm.clone().unwrap_or_default(), true, proc.clone());
    }
    let mut probes: Vec<Box<dyn Probe>> = started.into_iter().map(|(p, _)| p).collect();
    let runtime = |e: h5::Hdf5Error| RecordError::Runtime(format!("writing {}: {e}", path.display()));
    // The tables, in the writer's order, with their attributes: made again
    // for every file of a rotated series.
    let mut specs = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let (table_name, title) = if i == 0 {
            ("messer_timeseries", "messer time series")
        } else {
            ("messer_procfs_timeseries", "messer time series (procfs measurement)")
        };
        let probe_mode = if i == 0 && mode == "both" {
            "ebpf"
        } else if i == 0 {
            mode
        } else {
            "procfs"
        };
        let mut attrs = meta::attributes(
            follow.pid(),
            cli.pid_command.as_deref().unwrap_or(""),
            cli.interval,
            &cli.label,
            probe_mode,
        );
        if i == 0 && mode == "both" {
            attrs.push(("messer_recording_mode", h5::AttrValue::Str("both".into())));
        }
        if let Some(c) = &cli.comm {
            attrs.push(("messer_comm", h5::AttrValue::Str(c.clone())));
        }
        if !cli.command.is_empty() {
            attrs.push(("messer_launched_command", h5::AttrValue::Str(crate::redact::urls(&cli.command.join(" ")))));
        }
        specs.push(TableSpec { name: table_name, title, schema: Sample::schema(probe.columns()), attrs });
    }
    let ts_schema = specs[0].schema.clone();
    let procfs_spec = if specs.len() == 2 { specs.pop() } else { None };
    let plain = |name, title, schema| TableSpec { name, title, schema, attrs: Vec::new() };
    specs.push(plain("messer_processes", "messer per-process time series", processes::schema()));
    specs.push(plain("messer_process_info", "messer processes seen", processes::info_schema()));
    specs.push(plain("messer_events", "messer process events", ProcEvent::schema()));
    specs.extend(procfs_spec);
    let all = create_tables(&file, &specs, 0).map_err(runtime)?;
    let what = match &spec {
        Spec::Pid(p) => format!("pid {p}"),
        Spec::Launch(c) => c.join(" "),
        Spec::PidCommand(c) => format!("the pid `{c}` prints"),
        Spec::Comm(c) => format!("every process named {c}"),
    };
    log::info!("recording {what} in {mode} mode every {} s into {}", cli.interval, path.display());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let target_label = match &spec {
        Spec::Pid(p) => p.to_string(),
        Spec::Launch(c) => c.join(" "),
        Spec::PidCommand(c) | Spec::Comm(c) => (*c).to_string(),
    };
    let comm_label = match (&spec, &target_comm) {
        (Spec::Comm(c), _) => (*c).to_string(),
        // Held before its exec, the child still has messer's comm.
        (Spec::Launch(c), _) => c.first().and_then(|p| p.rsplit('/').next()).unwrap_or("").chars().take(15).collect(),
        (_, Some(c)) => c.clone(),
        _ => String::new(),
    };
    let labels =
        [("target", target_label), ("comm", comm_label.clone()), ("host", host), ("messer_mode", mode.to_string())];
    let mut exporters = match Exporters::start(&exporter_options(cli), &ts_schema, &labels) {
        Ok(e) => e,
        Err(e) => {
            drop(all);
            drop(file);
            let _ = std::fs::remove_file(&path);
            abandon(paused);
            return Err(RecordError::Usage(e.to_string()));
        }
    };
    let rotation = rotate_bytes.map(|limit| Rotation {
        limit_bytes: limit,
        retain_bytes,
        base: path.clone(),
        compress: !cli.no_compress,
        open: Box::new(move |p: &std::path::Path, index: u64| {
            let f = h5::create_file(p)?;
            output::chown_to_invoker(p);
            let t = create_tables(&f, &specs, index)?;
            Ok((f, t))
        }),
    });
    let writer = Writer::spawn(file, path.clone(), all, QUEUE_ROWS, rotation)
        .map_err(|e| RecordError::Runtime(format!("cannot start the writer thread: {e}")))?;
    if let Some(mut e) = first_event {
        // A launched command is found while held before its exec, under
        // messer's name: the event names the program it runs.
        if matches!(spec, Spec::Launch(_)) && !comm_label.is_empty() {
            e.comm.clone_from(&comm_label);
        }
        let _ = writer.send(EVENTS, e.row());
    }

    let mut status = status::Status::new(cli.quiet, path.clone());
    let cpu_col = ts_schema.columns.iter().position(|c| c.name == "proc_cpu_util_percent_total");
    let rss_col = ts_schema.columns.iter().position(|c| c.name == "proc_mem_rss");
    // Used by both the start hook and the sampling callback.
    let registry =
        std::cell::RefCell::new(processes::Registry::new(proc.clone(), crate::base::clock::realtime_ns() as f64 / 1e9));
    let launched_pid = paused.as_ref().map(|p| p.pid);
    let mut launch_error = None;
    // After the baseline read: let a launched command run.
    let start = || match paused.as_mut().map(launch::Paused::release) {
        Some(Err(e)) => {
            let msg = e.to_string();
            launch_error = Some(e);
            Err(msg)
        }
        Some(Ok(())) => {
            if let Some(pid) = launched_pid {
                registry.borrow_mut().note(pid, crate::base::clock::realtime_ns() as f64 / 1e9, &cli.command);
            }
            Ok(())
        }
        None => Ok(()),
    };
    let result =
        sampler::run(&mut probes, &mut follow, &signals, interval_ns, duration_ns, start, |samples, events| {
            for e in &events {
                writer.send(EVENTS, e.row())?;
            }
            registry.borrow_mut().note_exits(&events);
            let mut samples = samples.into_iter();
            if let Some(s) = samples.next() {
                let row = s.row();
                exporters.sample(&row, &s.processes);
                if let Some(st) = &mut status {
                    let num = |i: Option<usize>| match i.and_then(|i| row.get(i)) {
                        Some(crate::base::table::Value::F64(v)) => *v,
                        _ => f64::NAN,
                    };
                    st.sample(num(cpu_col), num(rss_col), writer.lost());
                }
                writer.send(TIMESERIES, row)?;
                for row in s.process_rows() {
                    writer.send(PROCESSES, row)?;
                }
                for row in registry.borrow_mut().observe(&s.processes, s.unixtime) {
                    exporters.summary(&row);
                    writer.send(PROCESS_INFO, row)?;
                }
            }
            if let Some(s) = samples.next() {
                writer.send(PROCFS_TIMESERIES, s.row())?;
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
        (Some(p), _) => {
            log::info!("the command is still running (pid {}); it is no longer recorded", p.pid);
            None
        }
        _ => None,
    };
    // A launched command's status as a number: its exit code, or minus the signal.
    let child = child_status.zip(launched_pid).map(|(e, pid)| match e {
        launch::Exit::Code(c) => (pid, f64::from(c)),
        launch::Exit::Signal(s) => (pid, -f64::from(s)),
    });
    drop(status);
    for row in registry.into_inner().finish(child) {
        exporters.summary(&row);
        let _ = writer.send(PROCESS_INFO, row);
    }
    for (name, v) in exporters.finish() {
        let _ = writer.set_attr(TIMESERIES, name, h5::AttrValue::I64(v as i64));
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
    drop(probes);
    if let Some(e) = launch_error {
        // Nothing of the command was recorded: leave no file behind.
        let _ = std::fs::remove_file(&path);
        return Err(RecordError::Launch(e.to_string(), e.exit_code()));
    }
    match result {
        Ok(Stop::TargetExited) => log::info!("the target exited"),
        Ok(Stop::Signal(sig)) => log::info!("stopped by signal {sig}"),
        Ok(Stop::Duration) => log::info!("--duration elapsed"),
        // The writer's own error says more than "the writer stopped".
        Err(sampler::SamplerError::Sink(_)) if written.is_err() => {}
        Err(e) => return Err(RecordError::Runtime(e.to_string())),
    }
    let (rows, path) = written?;
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
        assert_eq!(interval_ns(86_400.0).unwrap(), 86_400_000_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0009, 86_400.1, 1e308] {
            assert!(matches!(interval_ns(bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn durations_and_map_sizes_are_checked() {
        assert_eq!(duration_ns(Some(1.5)).unwrap(), Some(1_500_000_000));
        assert_eq!(duration_ns(None).unwrap(), None);
        let most = duration_ns(Some(MAX_DURATION_S)).unwrap().unwrap();
        assert!(most.checked_add(u64::from(u32::MAX) * 1_000_000_000).is_some());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e308, 4.0e9] {
            assert!(matches!(duration_ns(Some(bad)), Err(RecordError::Usage(_))), "{bad}");
        }
        assert!(map_entries("--max-threads", 1).is_ok());
        assert!(map_entries("--max-threads", MAX_MAP_ENTRIES).is_ok());
        for bad in [0, MAX_MAP_ENTRIES + 1, u32::MAX] {
            assert!(matches!(map_entries("--max-threads", bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn comm_fits_the_kernel() {
        assert_eq!(&comm_bytes("supertool").unwrap()[..10], b"supertool\0");
        assert!(comm_bytes(&"x".repeat(15)).is_ok());
        for bad in ["", "sixteen_chars_xx", "a/b"] {
            assert!(matches!(comm_bytes(bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }
}
