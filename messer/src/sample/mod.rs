//! A sample: one row of `/messer_timeseries`, made from a probe's reading and
//! the real time elapsed since the previous one.

pub mod follow;
pub mod processes;
pub mod realtime;
pub mod sampler;
pub mod threads;

use crate::base::clock;
use crate::base::table::{Column, Kind, Row, Schema, Value};
use crate::probe::{CpuWindow, Measure, Reading};

/// Version of the file layout; bumped when columns change meaning.
/// 2: with --io-syscalls, `proc_disk_*` leave sockets out (their traffic is
/// in `proc_net_*`).
pub const SCHEMA_VERSION: i64 = 2;

/// One row of the time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Seconds since the epoch at the end of the window.
    pub unixtime: f64,
    /// Local time at the end of the window, 26 characters.
    pub isotime_local: String,
    /// CLOCK_MONOTONIC seconds at the end of the window.
    pub monotime: f64,
    /// Real length of the window, seconds.
    pub window_seconds: f64,
    pub pid: i64,
    pub num_processes: i64,
    pub cpu_total_percent: f64,
    pub cpu_user_percent: f64,
    pub cpu_system_percent: f64,
    /// messer's own CPU (all its threads) over the window, % of one core.
    pub messer_cpu_percent: f64,
    /// The probe's own columns (see `Probe::columns`).
    pub extra: Vec<Value>,
    /// The processes of this window (see `processes`).
    pub processes: Vec<crate::probe::ProcessWindow>,
    /// `--runq-latency`: the window's run-queue waits per bucket.
    pub runq_hist: Vec<(u64, u64, u64)>,
    /// `--threads`: each thread's part of the window.
    pub threads: Vec<crate::probe::ThreadWindow>,
    pub window_ns: u64,
}

/// CPU percentages (of one core) over a window of `window_ns`.
///
/// The total is exact; user and system split it in the ratio of the kernel's
/// tick-based utime/stime over the same window. With no tick seen in the
/// window the split is unknown: NaN (unless there was no CPU time at all).
pub fn cpu_percent(cpu: &CpuWindow, window_ns: u64) -> (f64, f64, f64) {
    if window_ns == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let total = cpu.on_cpu_ns as f64 / window_ns as f64 * 100.0;
    let ticks = cpu.user_ticks + cpu.system_ticks;
    if ticks == 0 {
        return if cpu.on_cpu_ns == 0 { (0.0, 0.0, 0.0) } else { (total, f64::NAN, f64::NAN) };
    }
    let share = |t: u64| total * t as f64 / ticks as f64;
    (total, share(cpu.user_ticks), share(cpu.system_ticks))
}

impl Sample {
    /// Σ resident memory of the window's processes (bytes, at the end of the
    /// window, as `proc_mem_rss`); NaN if none is known.
    pub fn rss_bytes(&self) -> f64 {
        let known: Vec<f64> = self.processes.iter().map(|p| p.rss_bytes).filter(|v| v.is_finite()).collect();
        if known.is_empty() { f64::NAN } else { known.iter().sum() }
    }

    /// The sample for the window that ends at `now` and began at `prev_mono_ns`.
    pub fn from_reading(now: &Reading, prev_mono_ns: u64, pid: i32) -> Self {
        let window_ns = now.mono_ns.saturating_sub(prev_mono_ns);
        let (total, user, system) =
            if now.present { cpu_percent(&now.cpu, window_ns) } else { (f64::NAN, f64::NAN, f64::NAN) };
        let unix_ns = clock::wall_of(now.mono_ns);
        Sample {
            unixtime: unix_ns as f64 / 1e9,
            isotime_local: clock::isotime_local(unix_ns),
            monotime: now.mono_ns as f64 / 1e9,
            window_seconds: window_ns as f64 / 1e9,
            pid: i64::from(pid),
            num_processes: i64::from(now.num_processes),
            cpu_total_percent: total,
            cpu_user_percent: user,
            cpu_system_percent: system,
            messer_cpu_percent: f64::NAN,
            processes: now.processes.clone(),
            runq_hist: now.runq_hist.clone(),
            threads: now.threads.clone(),
            window_ns,
            extra: now
                .extra
                .iter()
                .map(|m| match m {
                    Measure::Total(n) => Value::I64(i64::try_from(*n).unwrap_or(i64::MAX)),
                    m => Value::F64(m.value(window_ns)),
                })
                .collect(),
        }
    }

    /// The columns of `/messer_timeseries`: the common ones, then `extra`.
    pub fn schema(extra: Vec<Column>) -> Schema {
        let mut columns = Self::common_columns();
        columns.extend(extra);
        Schema::new(columns)
    }

    /// How many columns every time series has before the probe's own
    /// (`extra[i]` is column `COMMON + i`).
    pub const COMMON: usize = 10;

    fn common_columns() -> Vec<Column> {
        vec![
            Column::new("unixtime", Kind::F64),
            Column::new("isotime_local", Kind::Ascii(26)),
            Column::new("monotime", Kind::F64),
            Column::new("window_seconds", Kind::F64),
            Column::new("proc_pid", Kind::I64),
            Column::new("proc_num_processes", Kind::I64),
            Column::new("proc_cpu_util_percent_total", Kind::F64),
            Column::new("proc_cpu_util_percent_user", Kind::F64),
            Column::new("proc_cpu_util_percent_system", Kind::F64),
            Column::new("messer_cpu_util_percent", Kind::F64),
        ]
    }

    /// The `/messer_threads` rows of this window: one per thread.
    pub fn thread_rows(&self) -> Vec<Row> {
        self.threads.iter().map(|t| threads::row(t, self.unixtime, self.monotime, self.window_ns)).collect()
    }

    /// The `/messer_thread_groups` rows of this window: one per group.
    pub fn thread_group_rows(&self) -> Vec<Row> {
        threads::group_rows(&self.threads, self.unixtime, self.monotime, self.window_ns)
    }

    /// The `/messer_runq_latency` rows of this window: one per bucket that
    /// has waits (edges in µs).
    pub fn runq_rows(&self) -> Vec<Row> {
        let us = |ns: u64| Value::F64(ns as f64 / 1e3);
        self.runq_hist
            .iter()
            .map(|&(lo, hi, n)| {
                vec![
                    Value::F64(self.unixtime),
                    Value::F64(self.monotime),
                    Value::F64(self.window_seconds),
                    us(lo),
                    us(hi),
                    Value::I64(n as i64),
                ]
            })
            .collect()
    }

    /// The `/messer_processes` rows of this window.
    pub fn process_rows(&self) -> Vec<Row> {
        self.processes.iter().map(|p| processes::row(p, self.unixtime, self.monotime, self.window_ns)).collect()
    }

    /// The row for `schema()`.
    pub fn row(&self) -> Row {
        let mut row = vec![
            Value::F64(self.unixtime),
            Value::Ascii(self.isotime_local.clone()),
            Value::F64(self.monotime),
            Value::F64(self.window_seconds),
            Value::I64(self.pid),
            Value::I64(self.num_processes),
            Value::F64(self.cpu_total_percent),
            Value::F64(self.cpu_user_percent),
            Value::F64(self.cpu_system_percent),
            Value::F64(self.messer_cpu_percent),
        ];
        row.extend(self.extra.iter().cloned());
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_of_one_core_is_never_clamped() {
        let cpu = CpuWindow { on_cpu_ns: 1_500_000_000, user_ticks: 3, system_ticks: 1 };
        let (t, u, s) = cpu_percent(&cpu, 1_000_000_000);
        assert_eq!(t, 150.0);
        assert_eq!(u, 112.5);
        assert_eq!(s, 37.5);
    }

    #[test]
    fn split_without_ticks_is_missing_not_zero() {
        let cpu = CpuWindow { on_cpu_ns: 4_000_000, user_ticks: 0, system_ticks: 0 };
        let (t, u, s) = cpu_percent(&cpu, 10_000_000);
        assert_eq!(t, 40.0);
        assert!(u.is_nan() && s.is_nan());
        assert_eq!(cpu_percent(&CpuWindow::default(), 10), (0.0, 0.0, 0.0));
    }

    #[test]
    fn row_matches_schema() {
        let r = Reading {
            mono_ns: 2_000_000_000,
            cpu: CpuWindow::default(),
            num_processes: 1,
            extra: vec![Measure::PerSecond(3.0), Measure::Total(7)],
            processes: Vec::new(),
            runq_hist: Vec::new(),
            threads: Vec::new(),
            present: true,
            events: Vec::new(),
        };
        let s = Sample::from_reading(&r, 1_500_000_000, 42);
        assert_eq!(s.window_seconds, 0.5);
        let extra = vec![crate::probe::measure::float("a"), crate::probe::measure::integer("b")];
        assert_eq!(s.row().len(), Sample::schema(extra).columns.len());
        assert_eq!(s.extra, vec![Value::F64(6.0), Value::I64(7)]);
    }
}
