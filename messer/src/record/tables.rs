//! The tables of a recording, in the writer's order, with their
//! attributes: made for the first file and again for every file of a
//! rotated series.

use super::config::RecordConfig;
use super::meta;
use crate::base::table::Schema;
use crate::probe::{Probe, ProcEvent};
use crate::sample::{Sample, processes};
use crate::sink::hdf5::{self as h5, Table};

/// Tables, in the writer's order.
pub const TIMESERIES: usize = 0;
pub const PROCESSES: usize = 1;
pub const PROCESS_INFO: usize = 2;
pub const EVENTS: usize = 3;

/// Where the tables a recording may lack are, if it has them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Optional {
    /// `--mode both`: the procfs measurement.
    pub procfs: Option<usize>,
    /// `--runq-latency`: the run-queue latency histogram.
    pub runq: Option<usize>,
    /// `--threads`: the per-thread and per-group tables.
    pub threads: Option<(usize, usize)>,
    /// `--threads` with `--mode both`: the procfs measurement's.
    pub procfs_threads: Option<(usize, usize)>,
}

impl Optional {
    pub fn of(specs: &[TableSpec]) -> Self {
        let at = |name: &str| specs.iter().position(|s| s.name == name);
        let threads = at("messer_threads").zip(at("messer_thread_groups"));
        let procfs_threads = at("messer_procfs_threads").zip(at("messer_procfs_thread_groups"));
        Optional { procfs: at("messer_procfs_timeseries"), runq: at(RUNQ_LATENCY), threads, procfs_threads }
    }
}

/// The run-queue latency histogram's table.
pub const RUNQ_LATENCY: &str = "messer_runq_latency";

/// Its columns: the window, then one bucket (edges in µs) and its waits.
pub fn runq_schema() -> Schema {
    use crate::base::table::{Column, Kind};
    let f = |n: &str| Column::new(n, Kind::F64);
    Schema::new(vec![
        f("unixtime"),
        f("monotime"),
        f("window_seconds"),
        f("bucket_lower_us"),
        f("bucket_upper_us"),
        Column::new("waits", Kind::I64),
    ])
}

/// A table to create: name, title, columns and attributes.
#[derive(Clone)]
pub struct TableSpec {
    pub name: &'static str,
    pub title: &'static str,
    pub schema: Schema,
    pub attrs: Vec<(&'static str, h5::AttrValue)>,
}

/// The tables for `probes` (one time series each: the first is
/// `/messer_timeseries`, a second `--mode both`'s procfs one, last), in the
/// writer's order.
pub fn specs(cfg: &RecordConfig, probes: &[Box<dyn Probe>], pid: i32, mode: &str) -> Vec<TableSpec> {
    let mut specs = Vec::new();
    for (i, probe) in probes.iter().enumerate() {
        let (name, title, probe_mode) = match (i, mode) {
            (0, "both") => ("messer_timeseries", "messer time series", "ebpf"),
            (0, m) => ("messer_timeseries", "messer time series", m),
            _ => ("messer_procfs_timeseries", "messer time series (procfs measurement)", "procfs"),
        };
        let mut attrs = meta::attributes(pid, cfg.pid_command(), cfg.interval_s, &cfg.label, probe_mode);
        if i == 0 && mode == "both" {
            attrs.push(("messer_recording_mode", h5::AttrValue::Str("both".into())));
        }
        if let Some(c) = cfg.comm() {
            attrs.push(("messer_comm", h5::AttrValue::Str(c.to_string())));
        }
        if let Some(c) = cfg.cgroup() {
            attrs.push(("messer_cgroup", h5::AttrValue::Str(c.path.display().to_string())));
            attrs.push(("messer_cgroup_id", h5::AttrValue::I64(c.id as i64)));
        }
        if let Some(c) = cfg.command() {
            attrs.push(("messer_launched_command", h5::AttrValue::Str(crate::redact::urls(&c.join(" ")))));
        }
        specs.push(TableSpec { name, title, schema: Sample::schema(probe.columns()), attrs });
    }
    let procfs = if specs.len() == 2 { specs.pop() } else { None };
    let plain = |name, title, schema| TableSpec { name, title, schema, attrs: Vec::new() };
    specs.push(plain("messer_processes", "messer per-process time series", processes::schema()));
    specs.push(plain("messer_process_info", "messer processes seen", processes::info_schema()));
    specs.push(plain("messer_events", "messer process events", ProcEvent::schema()));
    let runq = probes.first().is_some_and(|p| p.columns().iter().any(|c| c.name == "proc_runq_latency_p50_us"));
    if runq {
        specs.push(plain(RUNQ_LATENCY, "messer run-queue latency histogram per window", runq_schema()));
    }
    let both = procfs.is_some();
    if cfg.threads {
        specs.push(plain("messer_threads", "messer per-thread time series", crate::sample::threads::schema()));
        let groups = crate::sample::threads::group_schema();
        specs.push(plain("messer_thread_groups", "messer per-thread-group time series", groups));
    }
    specs.extend(procfs);
    if cfg.threads && both {
        let (threads, groups) = (crate::sample::threads::schema(), crate::sample::threads::group_schema());
        specs.push(plain("messer_procfs_threads", "messer per-thread time series (procfs measurement)", threads));
        let title = "messer per-thread-group time series (procfs measurement)";
        specs.push(plain("messer_procfs_thread_groups", title, groups));
    }
    specs
}

/// Creates `specs` in `file`; the first table carries `messer_series_index`.
pub fn create(file: &hdf5::File, specs: &[TableSpec], index: u64) -> Result<Vec<Table>, h5::Hdf5Error> {
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
