//! `messer inspect FILE`: what a recording holds.

use std::fmt::Write as _;

use super::read::{self, Cell, ReadError, TableData};

/// Attributes PyTables needs and users do not.
fn is_plumbing(name: &str) -> bool {
    matches!(name, "CLASS" | "VERSION" | "TITLE" | "NROWS") || name.starts_with("FIELD_")
}

fn cell(c: &Cell) -> String {
    match c {
        Cell::F64(v) => format!("{v}"),
        Cell::I64(v) => format!("{v}"),
        Cell::Str(s) => s.clone(),
    }
}

/// Per numeric column: min, mean, max over the values that are not missing,
/// and how many are missing.
fn column_stats(t: &TableData, out: &mut String) -> std::fmt::Result {
    writeln!(out, "  {:<44} {:>14} {:>14} {:>14} {:>8}", "column", "min", "mean", "max", "missing")?;
    for (i, name) in t.columns.iter().enumerate() {
        let values: Vec<f64> = t.rows.iter().filter_map(|r| r[i].number()).collect();
        if values.is_empty() && !t.rows.is_empty() {
            continue; // a text column
        }
        let known: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let missing = values.len() - known.len();
        if known.is_empty() {
            writeln!(out, "  {name:<44} {:>14} {:>14} {:>14} {missing:>8}", "-", "-", "-")?;
            continue;
        }
        let min = known.iter().copied().fold(f64::INFINITY, f64::min);
        let max = known.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mean = known.iter().sum::<f64>() / known.len() as f64;
        writeln!(out, "  {name:<44} {min:>14.6} {mean:>14.6} {max:>14.6} {missing:>8}")?;
    }
    Ok(())
}

/// The report for `path`.
pub fn report(path: &std::path::Path) -> Result<String, ReadError> {
    let file = read::open(path)?;
    let mut out = String::new();
    let w = |e: std::fmt::Error| ReadError::Lib(e.to_string());
    let ts = read::read_table(&file, "messer_timeseries")?;
    writeln!(out, "{}", path.display()).map_err(w)?;
    writeln!(out, "metadata:").map_err(w)?;
    for (k, v) in ts.attrs.iter().filter(|(k, _)| !is_plumbing(k)) {
        writeln!(out, "  {k}: {}", cell(v)).map_err(w)?;
    }
    for name in read::tables(&file)? {
        let t = if name == "messer_timeseries" { None } else { Some(read::read_table(&file, &name)?) };
        let t = t.as_ref().unwrap_or(&ts);
        writeln!(out, "\ntable /{name}: {} rows, {} columns", t.rows.len(), t.columns.len()).map_err(w)?;
        if let (Some(ix), Some(first), Some(last)) =
            (t.columns.iter().position(|c| c == "unixtime"), t.rows.first(), t.rows.last())
            && let (Some(a), Some(b)) = (first[ix].number(), last[ix].number())
        {
            let iso = |s: f64| {
                chrono::DateTime::from_timestamp(s.floor() as i64, 0)
                    .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S %Z").to_string())
                    .unwrap_or_default()
            };
            writeln!(out, "  time span: {} to {} ({:.3} s)", iso(a), iso(b), b - a).map_err(w)?;
        }
        column_stats(t, &mut out).map_err(w)?;
        if name == "messer_process_info" {
            credits(t, &mut out).map_err(w)?;
        }
        if name == "messer_thread_groups" {
            top_groups(t, &mut out).map_err(w)?;
        }
        if name == "messer_runq_latency" {
            latency(t, &mut out).map_err(w)?;
        }
    }
    Ok(out)
}

/// How many thread groups each top list shows.
const TOP: usize = 10;

/// The thread groups that used the most CPU and waited longest for it over
/// the whole recording (each window's % times its length).
fn top_groups(t: &TableData, out: &mut String) -> std::fmt::Result {
    let col = |n: &str| t.columns.iter().position(|c| c == n);
    let (Some(pid), Some(group), Some(win), Some(cpu), Some(wait)) = (
        col("pid"),
        col("thread_group"),
        col("window_seconds"),
        col("cpu_util_percent_total"),
        col("runq_wait_percent"),
    ) else {
        return Ok(());
    };
    let mut sums: std::collections::BTreeMap<(String, String), (f64, f64)> = Default::default();
    for r in &t.rows {
        let w = r[win].number().filter(|v| v.is_finite()).unwrap_or(0.0);
        let part = |i: usize| r[i].number().filter(|v| v.is_finite()).unwrap_or(0.0) / 100.0 * w;
        let e = sums.entry((cell(&r[pid]), cell(&r[group]))).or_default();
        e.0 += part(cpu);
        e.1 += part(wait);
    }
    let mut v: Vec<_> = sums.into_iter().collect();
    for (title, pick) in [("CPU", 0), ("run-queue wait", 1)] {
        let key = |x: &(f64, f64)| if pick == 0 { x.0 } else { x.1 };
        v.sort_by(|a, b| key(&b.1).total_cmp(&key(&a.1)));
        writeln!(out, "  top thread groups by {title} (seconds over the recording):")?;
        for ((p, g), x) in v.iter().take(TOP) {
            writeln!(out, "    pid {p:<8} {g:<20} {:>12.6} s", key(x))?;
        }
    }
    Ok(())
}

/// The run-queue latency distribution of the whole recording, from every
/// window's buckets: each quantile as the upper edge of its bucket.
fn latency(t: &TableData, out: &mut String) -> std::fmt::Result {
    let col = |n: &str| t.columns.iter().position(|c| c == n);
    let (Some(lo), Some(hi), Some(n)) = (col("bucket_lower_us"), col("bucket_upper_us"), col("waits")) else {
        return Ok(());
    };
    let mut buckets: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for r in &t.rows {
        let (Some(l), Some(h), Some(c)) = (r[lo].number(), r[hi].number(), r[n].number()) else { continue };
        let e = buckets.entry((l * 1e3).round() as u64).or_insert((h, 0.0));
        e.1 += c;
    }
    let total: f64 = buckets.values().map(|b| b.1).sum();
    if total == 0.0 {
        return Ok(());
    }
    write!(out, "  run-queue latency over the recording ({total} waits):")?;
    for q in [0.5, 0.9, 0.99, 0.999] {
        let rank = (q * total).ceil().max(1.0);
        let mut seen = 0.0;
        if let Some((_, (h, _))) = buckets.iter().find(|(_, (_, c))| {
            seen += c;
            seen >= rank
        }) {
            write!(out, " p{} <= {h} us", q * 100.0)?;
        }
    }
    writeln!(out)
}

/// CPU credits (one vCPU at 100 % for one minute) per program and per user.
fn credits(t: &TableData, out: &mut String) -> std::fmt::Result {
    let col = |n: &str| t.columns.iter().position(|c| c == n);
    let (Some(comm), Some(user), Some(cred)) = (col("comm"), col("user"), col("cpu_credits")) else {
        return Ok(());
    };
    for (title, key) in [("program", comm), ("user", user)] {
        let mut sums: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
        for r in &t.rows {
            let k = cell(&r[key]);
            let e = sums.entry(if k.is_empty() { "?".into() } else { k }).or_default();
            e.0 += r[cred].number().filter(|v| v.is_finite()).unwrap_or(0.0);
            e.1 += 1;
        }
        writeln!(out, "  CPU credits per {title} (1 credit = 1 vCPU-minute):")?;
        let mut v: Vec<_> = sums.into_iter().collect();
        v.sort_by(|a, b| b.1.0.total_cmp(&a.1.0));
        for (k, (c, n)) in v {
            writeln!(out, "    {k:<32} {c:>12.6} credits  ({n} process{})", if n == 1 { "" } else { "es" })?;
        }
    }
    Ok(())
}
