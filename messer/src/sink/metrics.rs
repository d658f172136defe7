//! Prometheus metrics from typed samples: cumulative counters are summed
//! from each window's figures (so they never go backwards when processes of
//! the tree exit), gauges take the latest value. A window whose figure is
//! missing adds nothing and leaves a gauge out of the exposition.
//!
//! Each metric is bound once, at start, to where its figure is in a
//! sample: a typed field of `Sample` (the window, the tree's CPU) or one of
//! the probe's own figures (`Sample::extra`, whose columns the probe
//! declared for the recording's life: memory, devices, pressure...).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::base::table::{Schema, Value};
use crate::sample::Sample;

/// Where a metric's figure is in a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Window,
    Processes,
    CpuTotal,
    CpuUser,
    CpuSystem,
    /// `Sample::extra[i]`.
    Extra(usize),
}

impl Field {
    /// The field of time-series column `col` in `schema`; None if the
    /// recording has no such column.
    fn bind(schema: &Schema, col: &str) -> Option<Field> {
        Some(match col {
            "window_seconds" => Field::Window,
            "proc_num_processes" => Field::Processes,
            "proc_cpu_util_percent_total" => Field::CpuTotal,
            "proc_cpu_util_percent_user" => Field::CpuUser,
            "proc_cpu_util_percent_system" => Field::CpuSystem,
            _ => Field::Extra(schema.columns.iter().position(|c| c.name == col)?.checked_sub(Sample::COMMON)?),
        })
    }

    /// Its value in `s`, if known.
    fn of(self, s: &Sample) -> Option<f64> {
        let v = match self {
            Field::Window => s.window_seconds,
            Field::Processes => s.num_processes as f64,
            Field::CpuTotal => s.cpu_total_percent,
            Field::CpuUser => s.cpu_user_percent,
            Field::CpuSystem => s.cpu_system_percent,
            Field::Extra(i) => match s.extra.get(i)? {
                Value::F64(v) => *v,
                Value::I64(v) => *v as f64,
                _ => return None,
            },
        };
        v.is_finite().then_some(v)
    }
}

/// Counter: (metric, label, source column, factor from value x window seconds).
const COUNTERS: &[(&str, &str, &str, f64)] = &[
    ("messer_process_cpu_seconds_total", "mode=\"user\"", "proc_cpu_util_percent_user", 0.01),
    ("messer_process_cpu_seconds_total", "mode=\"system\"", "proc_cpu_util_percent_system", 0.01),
    ("messer_process_runqueue_wait_seconds_total", "", "proc_runq_wait_percent", 0.01),
    ("messer_process_io_read_bytes_total", "", "proc_disk_read_throughput_mibps", 1048576.0),
    ("messer_process_io_write_bytes_total", "", "proc_disk_write_throughput_mibps", 1048576.0),
    ("messer_process_storage_read_bytes_total", "", "proc_io_storage_read_throughput_mibps", 1048576.0),
    ("messer_process_storage_write_bytes_total", "", "proc_io_storage_write_throughput_mibps", 1048576.0),
    ("messer_process_context_switches_total", "kind=\"voluntary\"", "proc_ctx_switch_voluntary_rate_hz", 1.0),
    ("messer_process_context_switches_total", "kind=\"involuntary\"", "proc_ctx_switch_involuntary_rate_hz", 1.0),
    ("messer_process_page_faults_total", "kind=\"minor\"", "proc_page_faults_minor_rate_hz", 1.0),
    ("messer_process_page_faults_total", "kind=\"major\"", "proc_page_faults_major_rate_hz", 1.0),
    ("messer_process_cancelled_write_bytes_total", "", "proc_io_cancelled_write_throughput_mibps", 1048576.0),
    ("messer_process_guest_cpu_seconds_total", "", "proc_cpu_util_percent_guest", 0.01),
];

/// Counters of events counted per window: (metric, source column).
const COUNTS: &[(&str, &str)] = &[("messer_process_oom_kills_total", "proc_oom_kills")];

/// Gauges with a label: (metric, label, source column).
const LABELLED_GAUGES: &[(&str, &str, &str)] = &[
    ("messer_process_threads_by_state", "state=\"running\"", "proc_num_threads_running"),
    ("messer_process_threads_by_state", "state=\"sleeping\"", "proc_num_threads_sleeping"),
    ("messer_process_threads_by_state", "state=\"disk_sleep\"", "proc_num_threads_disk_sleep"),
    ("messer_process_threads_by_state", "state=\"stopped\"", "proc_num_threads_stopped"),
    ("messer_process_threads_by_state", "state=\"zombie\"", "proc_num_threads_zombie"),
];

/// Gauges: (metric, source column, factor).
const GAUGES: &[(&str, &str, f64)] = &[
    ("messer_process_resident_memory_bytes", "proc_mem_rss", 1.0),
    ("messer_process_virtual_memory_bytes", "proc_mem_vms", 1.0),
    ("messer_process_proportional_memory_bytes", "proc_mem_pss", 1.0),
    ("messer_process_swap_bytes", "proc_mem_swap", 1.0),
    ("messer_process_threads", "proc_num_threads", 1.0),
    ("messer_process_open_fds", "proc_num_fds", 1.0),
    ("messer_process_max_fds", "proc_fd_limit", 1.0),
    ("messer_process_fd_used_ratio", "proc_fd_used_percent", 0.01),
    ("messer_process_ip_sockets", "proc_num_ip_sockets_open", 1.0),
    ("messer_process_tcp_connections", "proc_num_tcp_connections", 1.0),
    ("messer_processes", "proc_num_processes", 1.0),
    ("messer_process_cpu_utilization_ratio", "proc_cpu_util_percent_total", 0.01),
    ("messer_system_load1", "system_loadavg1", 1.0),
    ("messer_system_load5", "system_loadavg5", 1.0),
    ("messer_system_load15", "system_loadavg15", 1.0),
    ("messer_system_memory_total_bytes", "system_mem_total", 1.0),
    ("messer_system_memory_available_bytes", "system_mem_available", 1.0),
    ("messer_system_memory_used_bytes", "system_mem_used", 1.0),
    ("messer_system_swap_used_bytes", "system_swap_used", 1.0),
    ("messer_system_cpu_user_ratio", "system_cpu_util_percent_user", 0.01),
    ("messer_system_cpu_system_ratio", "system_cpu_util_percent_system", 0.01),
    ("messer_system_cpu_idle_ratio", "system_cpu_util_percent_idle", 0.01),
    ("messer_system_cpu_iowait_ratio", "system_cpu_util_percent_iowait", 0.01),
    ("messer_system_cpu_steal_ratio", "system_cpu_util_percent_steal", 0.01),
    ("messer_system_pressure_cpu_some_ratio", "system_pressure_cpu_some_percent", 0.01),
    ("messer_system_pressure_memory_some_ratio", "system_pressure_memory_some_percent", 0.01),
    ("messer_system_pressure_io_some_ratio", "system_pressure_io_some_percent", 0.01),
];

fn help(metric: &str) -> &'static str {
    match metric {
        "messer_process_cpu_seconds_total" => {
            "CPU time of the tracked process tree (ebpf: exact; user/system split by the kernel's ticks)"
        }
        "messer_process_cpu_unsplit_seconds_total" => "CPU time of windows in which the kernel charged no tick",
        "messer_process_runqueue_wait_seconds_total" => "Time the tree's threads waited runnable (ebpf mode)",
        "messer_process_io_read_bytes_total" | "messer_process_io_write_bytes_total" => {
            "Bytes read/written by read/write-family syscalls"
        }
        "messer_process_storage_read_bytes_total" | "messer_process_storage_write_bytes_total" => {
            "Bytes read from / written to storage (/proc/<pid>/io read_bytes, write_bytes)"
        }
        "messer_process_context_switches_total" => "Context switches of the tree's threads",
        "messer_process_page_faults_total" => "Page faults of the tree's threads (minor: no IO; major: IO)",
        "messer_process_cancelled_write_bytes_total" => "Bytes written and truncated before reaching storage",
        "messer_process_guest_cpu_seconds_total" => "CPU time the tree spent running virtual CPUs (part of user time)",
        "messer_process_oom_kills_total" => "Processes of the tree the OOM killer ended (ebpf mode)",
        "messer_process_threads_by_state" => "The tree's threads by state at the end of the last window",
        "messer_process_max_fds" => "Descriptor limit of the process using the largest share of its own",
        "messer_process_fd_used_ratio" => "Highest share of its descriptor limit a process of the tree uses",
        "messer_tree_process_page_faults_total" => "Page faults of one process of the tree while tracked",
        "messer_process_cpu_utilization_ratio" => "CPU of the tree over the last window, in cores",
        m if m.starts_with("messer_system_") => "System-wide figure of the last window (see README)",
        _ => "Tree figure at the end of the last window (see README)",
    }
}

/// Turns the samples of `/messer_timeseries` into a Prometheus exposition.
pub struct Metrics {
    /// Base labels on every series (target, comm, mode, host).
    labels: String,
    /// The counters the recording has: (metric, label) -> field, factor,
    /// whether the figure is a count per window (else a rate or a share).
    bound: Vec<((&'static str, &'static str), Field, f64, bool)>,
    /// The gauges it has: metric, label, field, factor.
    gauges: Vec<(&'static str, &'static str, Field, f64)>,
    counters: BTreeMap<(&'static str, &'static str), f64>,
    unsplit_s: f64,
    samples: u64,
    /// The gauges' values in the last sample (None: missing there).
    last: Vec<Option<f64>>,
    /// `--prometheus-per-process`: pid -> its series.
    per_process: Option<BTreeMap<i32, ProcessSeries>>,
}

/// One process's series for `--prometheus-per-process`.
#[derive(Debug, Clone, Default)]
struct ProcessSeries {
    comm: String,
    cpu_s: f64,
    rss_bytes: f64,
    faults_minor: f64,
    faults_major: f64,
}

/// Escapes a label value.
pub fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// `labels`: (name, value) pairs put on every series.
    pub fn new(schema: &Schema, labels: &[(&str, String)]) -> Self {
        let labels = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect::<Vec<_>>().join(",");
        let rates = COUNTERS.iter().map(|&(m, l, col, f)| ((m, l), col, f, false));
        let counts = COUNTS.iter().map(|&(m, col)| ((m, ""), col, 1.0, true));
        let bound: Vec<_> = rates
            .chain(counts)
            .filter_map(|(k, col, f, count)| Some((k, Field::bind(schema, col)?, f, count)))
            .collect();
        let plain = GAUGES.iter().map(|&(m, col, f)| (m, "", col, f));
        let labelled = LABELLED_GAUGES.iter().map(|&(m, l, col)| (m, l, col, 1.0));
        let gauges: Vec<_> =
            plain.chain(labelled).filter_map(|(m, l, col, f)| Some((m, l, Field::bind(schema, col)?, f))).collect();
        // Counters exist from the start (at 0) when their figure does.
        let counters = bound.iter().map(|(k, ..)| (*k, 0.0)).collect();
        Metrics {
            labels,
            last: vec![None; gauges.len()],
            bound,
            gauges,
            counters,
            unsplit_s: 0.0,
            samples: 0,
            per_process: None,
        }
    }

    /// Exports each process's series too.
    pub fn with_per_process(mut self) -> Self {
        self.per_process = Some(BTreeMap::new());
        self
    }

    /// The processes of the window (for `--prometheus-per-process`): a
    /// process that is gone loses its series.
    pub fn observe_processes(&mut self, processes: &[crate::probe::ProcessWindow]) {
        let Some(map) = &mut self.per_process else { return };
        let mut now = BTreeMap::new();
        let known = |v: f64| if v.is_finite() { v } else { 0.0 };
        for p in processes {
            let before = map.remove(&p.pid).unwrap_or_default();
            now.insert(
                p.pid,
                ProcessSeries {
                    comm: p.comm.clone(),
                    cpu_s: before.cpu_s + p.cpu.on_cpu_ns as f64 / 1e9,
                    rss_bytes: p.rss_bytes,
                    faults_minor: before.faults_minor + known(p.faults_minor),
                    faults_major: before.faults_major + known(p.faults_major),
                },
            );
        }
        *map = now;
    }

    /// Adds one sample (one window).
    pub fn observe(&mut self, s: &Sample) {
        self.samples += 1;
        let Some(window_s) = Field::Window.of(s) else { return };
        for &(key, field, factor, count) in &self.bound {
            if let Some(v) = field.of(s)
                && let Some(c) = self.counters.get_mut(&key)
            {
                *c += if count { v } else { v * window_s * factor };
            }
        }
        // CPU time whose split is unknown still counts, under its own name.
        if Field::CpuUser.of(s).is_none()
            && let Some(total) = Field::CpuTotal.of(s)
        {
            self.unsplit_s += total * window_s * 0.01;
        }
        self.last = self.gauges.iter().map(|&(_, _, field, factor)| field.of(s).map(|v| v * factor)).collect();
    }

    fn series(&self, extra: &str) -> String {
        match (self.labels.is_empty(), extra.is_empty()) {
            (true, true) => String::new(),
            (false, true) => format!("{{{}}}", self.labels),
            (true, false) => format!("{{{extra}}}"),
            (false, false) => format!("{{{},{extra}}}", self.labels),
        }
    }

    /// The exposition (text format 0.0.4) after the rows seen so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let head = |out: &mut String, metric: &str, kind: &str| {
            let _ = writeln!(out, "# HELP {metric} {}\n# TYPE {metric} {kind}", help(metric));
        };
        let mut done = "";
        for (&(metric, label), v) in &self.counters {
            if metric != done {
                head(&mut out, metric, "counter");
                done = metric;
            }
            let _ = writeln!(out, "{metric}{} {v}", self.series(label));
        }
        if self.counters.contains_key(&("messer_process_cpu_seconds_total", "mode=\"user\"")) {
            let metric = "messer_process_cpu_unsplit_seconds_total";
            head(&mut out, metric, "counter");
            let _ = writeln!(out, "{metric}{} {}", self.series(""), self.unsplit_s);
        }
        let mut done = "";
        for (&(metric, label, _, _), v) in self.gauges.iter().zip(&self.last) {
            if let Some(v) = v {
                if metric != done {
                    head(&mut out, metric, "gauge");
                    done = metric;
                }
                let _ = writeln!(out, "{metric}{} {v}", self.series(label));
            }
        }
        if let Some(map) = &self.per_process {
            // The base labels name the target (its `comm` among them): a
            // process's own name is `process`, so that no label repeats.
            let series = |pid: &i32, comm: &str, extra: &str| {
                self.series(&format!("pid=\"{pid}\",process=\"{}\"{extra}", label_value(comm)))
            };
            let metric = "messer_tree_process_cpu_seconds_total";
            let _ = writeln!(
                out,
                "# HELP {metric} CPU time of one process of the tree while tracked\n# TYPE {metric} counter"
            );
            for (pid, p) in map {
                let _ = writeln!(out, "{metric}{} {}", series(pid, &p.comm, ""), p.cpu_s);
            }
            let metric = "messer_tree_process_page_faults_total";
            head(&mut out, metric, "counter");
            for (pid, p) in map {
                let _ = writeln!(out, "{metric}{} {}", series(pid, &p.comm, ",kind=\"minor\""), p.faults_minor);
                let _ = writeln!(out, "{metric}{} {}", series(pid, &p.comm, ",kind=\"major\""), p.faults_major);
            }
            let metric = "messer_tree_process_resident_memory_bytes";
            let _ = writeln!(out, "# HELP {metric} Resident memory of one process of the tree\n# TYPE {metric} gauge");
            for (pid, p) in map.iter().filter(|(_, p)| p.rss_bytes.is_finite()) {
                let _ = writeln!(out, "{metric}{} {}", series(pid, &p.comm, ""), p.rss_bytes);
            }
        }
        let metric = "messer_samples_total";
        let _ = writeln!(out, "# HELP {metric} Samples taken\n# TYPE {metric} counter");
        let _ = writeln!(out, "{metric}{} {}", self.series(""), self.samples);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::measure::float;

    fn sample(cpu: [f64; 3], rss: f64, oom_kills: f64) -> Sample {
        Sample {
            unixtime: 0.0,
            isotime_local: String::new(),
            monotime: 0.0,
            window_seconds: 0.5,
            pid: 1,
            num_processes: 1,
            cpu_total_percent: cpu[0],
            cpu_user_percent: cpu[1],
            cpu_system_percent: cpu[2],
            messer_cpu_percent: 0.0,
            extra: vec![Value::F64(rss), Value::F64(oom_kills)],
            processes: Vec::new(),
            runq_hist: Vec::new(),
            threads: Vec::new(),
            window_ns: 500_000_000,
        }
    }

    #[test]
    fn counters_integrate_windows_and_skip_missing_values() {
        let schema = Sample::schema(vec![float("proc_mem_rss"), float("proc_oom_kills")]);
        let mut m = Metrics::new(&schema, &[("target", "a\"b".into())]);
        m.observe(&sample([100.0, 75.0, 25.0], 1e6, 1.0));
        m.observe(&sample([40.0, f64::NAN, f64::NAN], f64::NAN, 0.0));
        let text = m.render();
        assert!(text.contains("messer_process_cpu_seconds_total{target=\"a\\\"b\",mode=\"user\"} 0.375\n"), "{text}");
        assert!(text.contains("messer_process_cpu_seconds_total{target=\"a\\\"b\",mode=\"system\"} 0.125\n"), "{text}");
        assert!(text.contains("messer_process_cpu_unsplit_seconds_total{target=\"a\\\"b\"} 0.2\n"), "{text}");
        // The last row has no RSS: the gauge is left out, not 0.
        assert!(!text.contains("resident_memory"), "{text}");
        assert!(text.contains("messer_samples_total{target=\"a\\\"b\"} 2\n"));
        assert_eq!(text.matches("# TYPE messer_process_cpu_seconds_total counter").count(), 1);
        assert!(text.contains("messer_process_oom_kills_total{target=\"a\\\"b\"} 1\n"), "{text}");
        assert!(text.contains("messer_processes{target=\"a\\\"b\"} 1\n"), "{text}");
    }
}
