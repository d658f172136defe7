//! `messer compare FILE`: the ebpf and procfs measurements of a
//! `--mode both` recording side by side, per metric.

use std::fmt::Write as _;

use super::read::{self, Cell, ReadError, TableData};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Csv,
    Json,
}

/// One window where the two disagree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Window {
    /// Seconds since the first row.
    pub t: f64,
    pub ebpf: f64,
    pub procfs: f64,
    pub diff: f64,
}

/// The comparison of one metric.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Metric {
    pub name: String,
    /// What `total_*` is: an integral over time ("core-s", "events", "MiB")
    /// or, for momentary values, the "mean".
    pub total_unit: &'static str,
    pub total_ebpf: f64,
    pub total_procfs: f64,
    /// Windows where both have a value.
    pub windows: usize,
    pub mean_abs_diff: f64,
    pub max_abs_diff: f64,
    pub worst: Vec<Window>,
}

/// How a column's total is formed: (unit, factor per value-second), or a mean.
fn total_kind(name: &str) -> (&'static str, Option<f64>) {
    if name.contains("cpu_util_percent") || name.ends_with("runq_wait_percent") {
        ("core-s", Some(0.01))
    } else if name.ends_with("_rate_hz") {
        ("events", Some(1.0))
    } else if name.ends_with("_mibps") {
        ("MiB", Some(1.0))
    } else {
        ("mean", None)
    }
}

fn column(t: &TableData, name: &str) -> Option<Vec<f64>> {
    let i = t.columns.iter().position(|c| c == name)?;
    t.rows.iter().map(|r| r.get(i).and_then(Cell::number)).collect()
}

/// Compares every `proc_*` column the two tables share (rows are the same ticks).
pub fn compare(path: &std::path::Path, worst: usize) -> Result<Vec<Metric>, ReadError> {
    let file = read::open(path)?;
    let ebpf = read::read_table(&file, "messer_timeseries")?;
    let procfs = match read::read_table(&file, "messer_procfs_timeseries") {
        Err(ReadError::NoTable(..)) => return Err(ReadError::NotBoth(path.display().to_string())),
        r => r?,
    };
    let n = ebpf.rows.len().min(procfs.rows.len());
    let t = column(&ebpf, "unixtime").unwrap_or_default();
    let w = column(&ebpf, "window_seconds").unwrap_or_default();
    let mut out = Vec::new();
    // With --io-syscalls the kernel side's proc_disk_* leave sockets out,
    // which /proc's rchar/wchar cannot: not the same measurand.
    let by_kind = ebpf.columns.iter().any(|c| c == "proc_net_recv_rate_hz");
    let comparable =
        |c: &&String| c.starts_with("proc_") && *c != "proc_pid" && !(by_kind && c.starts_with("proc_disk_"));
    for name in ebpf.columns.iter().filter(comparable) {
        let (Some(a), Some(b)) = (column(&ebpf, name), column(&procfs, name)) else { continue };
        let (unit, factor) = total_kind(name);
        let mut windows = Vec::new();
        let (mut ta, mut tb, mut sum_diff) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let (x, y) = (a[i], b[i]);
            if !(x.is_finite() && y.is_finite()) {
                continue;
            }
            let secs = w.get(i).copied().unwrap_or(f64::NAN);
            let weight = factor.map_or(1.0, |f| f * secs);
            ta += x * weight;
            tb += y * weight;
            let d = (x - y).abs();
            sum_diff += d;
            windows.push(Window { t: t.get(i).copied().unwrap_or(f64::NAN) - t[0], ebpf: x, procfs: y, diff: d });
        }
        let count = windows.len();
        if factor.is_none() && count > 0 {
            ta /= count as f64;
            tb /= count as f64;
        }
        windows.sort_by(|p, q| q.diff.total_cmp(&p.diff));
        let max = windows.first().map_or(f64::NAN, |x| x.diff);
        windows.truncate(worst);
        out.push(Metric {
            name: name.clone(),
            total_unit: unit,
            total_ebpf: if count > 0 { ta } else { f64::NAN },
            total_procfs: if count > 0 { tb } else { f64::NAN },
            windows: count,
            mean_abs_diff: if count > 0 { sum_diff / count as f64 } else { f64::NAN },
            max_abs_diff: max,
            worst: windows,
        });
    }
    if out.is_empty() {
        return Err(ReadError::NotBoth(path.display().to_string()));
    }
    out.extend(thread_groups(&file, &ebpf, &procfs, worst)?);
    Ok(out)
}

/// With `--threads`: each thread group's CPU, ebpf against procfs, as
/// metrics named `thread_group <pid> <group> cpu_util_percent_total`. A
/// thread row belongs to the tick whose time-series row has its unixtime
/// (each probe's own); windows where one side has no row of the group
/// are left out of the per-window figures, not counted as zero.
fn thread_groups(
    file: &hdf5::File,
    ebpf_ts: &TableData,
    procfs_ts: &TableData,
    worst: usize,
) -> Result<Vec<Metric>, ReadError> {
    use std::collections::BTreeMap;
    let tables = read::tables(file)?;
    if !tables.iter().any(|t| t == "messer_procfs_thread_groups") || !tables.iter().any(|t| t == "messer_thread_groups")
    {
        return Ok(Vec::new());
    }
    // (pid, group) -> tick -> (cpu %, window s), for one side.
    type Side = BTreeMap<(i64, String), BTreeMap<usize, (f64, f64)>>;
    let side = |name: &str, ts: &TableData| -> Result<Side, ReadError> {
        let t = read::read_table(file, name)?;
        let tick_of: std::collections::HashMap<u64, usize> =
            column(ts, "unixtime").unwrap_or_default().iter().enumerate().map(|(i, u)| (u.to_bits(), i)).collect();
        let at = |c: &str| t.columns.iter().position(|x| x == c);
        let (Some(u), Some(p), Some(g), Some(c), Some(w)) =
            (at("unixtime"), at("pid"), at("thread_group"), at("cpu_util_percent_total"), at("window_seconds"))
        else {
            return Ok(Side::new());
        };
        let mut out = Side::new();
        for r in &t.rows {
            let num = |i: usize| r.get(i).and_then(Cell::number).unwrap_or(f64::NAN);
            let Some(&tick) = tick_of.get(&num(u).to_bits()) else { continue };
            let group = match r.get(g) {
                Some(Cell::Str(s)) => s.clone(),
                _ => continue,
            };
            out.entry((num(p) as i64, group)).or_default().insert(tick, (num(c), num(w)));
        }
        Ok(out)
    };
    let (a, b) = (side("messer_thread_groups", ebpf_ts)?, side("messer_procfs_thread_groups", procfs_ts)?);
    let t = column(ebpf_ts, "unixtime").unwrap_or_default();
    let mut out = Vec::new();
    for (key, wa) in &a {
        let Some(wb) = b.get(key) else { continue };
        let total =
            |w: &BTreeMap<usize, (f64, f64)>| w.values().filter(|v| v.0.is_finite()).map(|v| v.0 * 0.01 * v.1).sum();
        let mut windows: Vec<Window> = wa
            .iter()
            .filter_map(|(tick, &(x, _))| {
                let &(y, _) = wb.get(tick)?;
                (x.is_finite() && y.is_finite()).then(|| Window {
                    t: t.get(*tick).copied().unwrap_or(f64::NAN) - t.first().copied().unwrap_or(0.0),
                    ebpf: x,
                    procfs: y,
                    diff: (x - y).abs(),
                })
            })
            .collect();
        let count = windows.len();
        let mean = if count > 0 { windows.iter().map(|w| w.diff).sum::<f64>() / count as f64 } else { f64::NAN };
        windows.sort_by(|p, q| q.diff.total_cmp(&p.diff));
        let max = windows.first().map_or(f64::NAN, |x| x.diff);
        windows.truncate(worst);
        out.push(Metric {
            name: format!("thread_group {} {} cpu_util_percent_total", key.0, key.1),
            total_unit: "core-s",
            total_ebpf: total(wa),
            total_procfs: total(wb),
            windows: count,
            mean_abs_diff: mean,
            max_abs_diff: max,
            worst: windows,
        });
    }
    Ok(out)
}

/// The comparison as text, CSV or JSON.
pub fn render(metrics: &[Metric], format: Format) -> String {
    let mut s = String::new();
    match format {
        Format::Json => {
            s = serde_json::to_string_pretty(metrics).unwrap_or_default();
            s.push('\n');
        }
        Format::Csv => {
            s.push_str("metric,total_unit,total_ebpf,total_procfs,windows,mean_abs_diff,max_abs_diff\n");
            for m in metrics {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{}",
                    m.name,
                    m.total_unit,
                    num(m.total_ebpf),
                    num(m.total_procfs),
                    m.windows,
                    num(m.mean_abs_diff),
                    num(m.max_abs_diff)
                );
            }
        }
        Format::Text => {
            let _ = writeln!(
                s,
                "{:<44} {:>7} {:>12} {:>12} {:>7} {:>12} {:>12}",
                "metric (per-window values in its unit)",
                "total",
                "ebpf",
                "procfs",
                "windows",
                "mean |diff|",
                "max |diff|"
            );
            for m in metrics {
                let _ = writeln!(
                    s,
                    "{:<44} {:>7} {:>12.4} {:>12.4} {:>7} {:>12.4} {:>12.4}",
                    m.name, m.total_unit, m.total_ebpf, m.total_procfs, m.windows, m.mean_abs_diff, m.max_abs_diff
                );
                for w in &m.worst {
                    let _ = writeln!(
                        s,
                        "    at +{:.2} s: ebpf {:.4}, procfs {:.4}, diff {:.4}",
                        w.t, w.ebpf, w.procfs, w.diff
                    );
                }
            }
            if let Some(cpu) = metrics.iter().find(|m| m.name == "proc_cpu_util_percent_total") {
                let _ = writeln!(
                    s,
                    "\nCPU: ebpf and procfs agree within {:.3} % of a core per window over {} windows \
                     (mean difference {:.3} %; totals {:.3} and {:.3} core-s)",
                    cpu.max_abs_diff, cpu.windows, cpu.mean_abs_diff, cpu.total_ebpf, cpu.total_procfs
                );
            }
        }
    }
    s
}

fn num(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_integrate_rates_and_average_gauges() {
        assert_eq!(total_kind("proc_cpu_util_percent_total"), ("core-s", Some(0.01)));
        assert_eq!(total_kind("proc_ctx_switch_rate_hz"), ("events", Some(1.0)));
        assert_eq!(total_kind("proc_disk_read_throughput_mibps"), ("MiB", Some(1.0)));
        assert_eq!(total_kind("proc_mem_rss"), ("mean", None));
    }
}
