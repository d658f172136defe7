//! `--threads`: the rows of `/messer_threads` (one per thread per window)
//! and of `/messer_thread_groups` (one per thread group per window).
//!
//! A thread group is the threads of one process whose names differ only
//! by a trailing number: the trailing run of ASCII digits becomes `*`
//! (`worker-7` and `worker-12` are `worker-*`, `GC Thread#0` is
//! `GC Thread#*`); a name without trailing digits is its own group.

use std::collections::BTreeMap;

use super::cpu_percent;
use crate::base::table::{Column, Kind, Row, Schema, Value, ascii};
use crate::probe::{CpuWindow, ThreadWindow};

/// The group of a thread named `comm`.
pub fn group_of(comm: &str) -> String {
    let stem = comm.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() == comm.len() { comm.to_string() } else { format!("{stem}*") }
}

fn common(name_col: &'static str) -> Vec<Column> {
    let f = |n: &str| Column::new(n, Kind::F64);
    vec![
        f("unixtime"),
        f("monotime"),
        f("window_seconds"),
        Column::new("pid", Kind::I64),
        Column::new(name_col, Kind::Ascii(16)),
    ]
}

fn figures() -> Vec<Column> {
    let f = |n: &str| Column::new(n, Kind::F64);
    vec![
        f("cpu_util_percent_total"),
        f("cpu_util_percent_user"),
        f("cpu_util_percent_system"),
        f("runq_wait_percent"),
        f("ctx_switch_voluntary_rate_hz"),
        f("ctx_switch_involuntary_rate_hz"),
    ]
}

pub fn schema() -> Schema {
    let mut c = common("comm");
    c.insert(4, Column::new("tid", Kind::I64));
    c.extend(figures());
    Schema::new(c)
}

pub fn group_schema() -> Schema {
    let mut c = common("thread_group");
    c.push(Column::new("threads", Kind::I64));
    c.extend(figures());
    Schema::new(c)
}

/// The figure columns' values for counts summed over a window of `window_ns`.
fn values(cpu: &CpuWindow, wait_ns: u64, vol: Option<u64>, invol: Option<u64>, window_ns: u64) -> [Value; 6] {
    let (total, user, system) = cpu_percent(cpu, window_ns);
    let secs = window_ns as f64 / 1e9;
    let rate = |n: Option<u64>| match n {
        Some(n) if window_ns > 0 => n as f64 / secs,
        _ => f64::NAN,
    };
    let wait = if window_ns == 0 { f64::NAN } else { wait_ns as f64 / window_ns as f64 * 100.0 };
    [total, user, system, wait, rate(vol), rate(invol)].map(Value::F64)
}

pub fn row(t: &ThreadWindow, unixtime: f64, monotime: f64, window_ns: u64) -> Row {
    let mut row = vec![
        Value::F64(unixtime),
        Value::F64(monotime),
        Value::F64(window_ns as f64 / 1e9),
        Value::I64(i64::from(t.pid)),
        Value::I64(i64::from(t.tid)),
        Value::Ascii(ascii(&t.comm, 16)),
    ];
    row.extend(values(&t.cpu, t.runq_wait_ns, t.switches_voluntary, t.switches_involuntary, window_ns));
    row
}

pub fn group_rows(threads: &[ThreadWindow], unixtime: f64, monotime: f64, window_ns: u64) -> Vec<Row> {
    #[derive(Default)]
    struct Sum {
        threads: i64,
        cpu: CpuWindow,
        wait: u64,
        vol: Option<u64>,
        invol: Option<u64>,
    }
    let mut groups: BTreeMap<(i32, String), Sum> = BTreeMap::new();
    for t in threads {
        let g = groups.entry((t.pid, group_of(&t.comm))).or_insert_with(|| Sum {
            vol: Some(0),
            invol: Some(0),
            ..Sum::default()
        });
        g.threads += 1;
        g.cpu.on_cpu_ns += t.cpu.on_cpu_ns;
        g.cpu.user_ticks += t.cpu.user_ticks;
        g.cpu.system_ticks += t.cpu.system_ticks;
        g.wait += t.runq_wait_ns;
        g.vol = g.vol.zip(t.switches_voluntary).map(|(a, b)| a + b);
        g.invol = g.invol.zip(t.switches_involuntary).map(|(a, b)| a + b);
    }
    groups
        .into_iter()
        .map(|((pid, name), g)| {
            let mut row = vec![
                Value::F64(unixtime),
                Value::F64(monotime),
                Value::F64(window_ns as f64 / 1e9),
                Value::I64(i64::from(pid)),
                Value::Ascii(ascii(&name, 16)),
                Value::I64(g.threads),
            ];
            row.extend(values(&g.cpu, g.wait, g.vol, g.invol, window_ns));
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_differ_by_a_trailing_number_are_one_group() {
        assert_eq!(group_of("worker-7"), "worker-*");
        assert_eq!(group_of("worker-12"), "worker-*");
        assert_eq!(group_of("GC Thread#0"), "GC Thread#*");
        assert_eq!(group_of("main"), "main");
        assert_eq!(group_of("42"), "*");
        assert_eq!(group_of("pool-1-thread-3"), "pool-1-thread-*");
    }

    #[test]
    fn groups_sum_their_threads() {
        let t = |tid: i32, comm: &str, ns: i64| ThreadWindow {
            pid: 1,
            tid,
            comm: comm.into(),
            cpu: CpuWindow { on_cpu_ns: ns, user_ticks: 1, system_ticks: 0 },
            runq_wait_ns: 10,
            switches_voluntary: Some(2),
            switches_involuntary: Some(0),
        };
        let rows = group_rows(&[t(2, "w-1", 100), t(3, "w-2", 300), t(4, "main", 50)], 0.0, 0.0, 1000);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1][4], Value::Ascii("w-*".into()));
        assert_eq!(rows[1][5], Value::I64(2));
        assert_eq!(rows[1][6], Value::F64(40.0));
        assert_eq!(schema().columns.len(), 12);
        assert_eq!(group_schema().columns.len(), 12);
    }
}
