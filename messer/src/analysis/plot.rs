//! `messer plot FILE... -o OUT.{png,svg,html}`: one figure of stacked
//! panels over time (seconds since each recording's first row, so that
//! replicas line up), several files overlaid with a label each. Drawn with
//! plotters (PNG and SVG without a browser or Python).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::read::{self, ReadError, TableData};

/// A panel: title, unit, and (column, scale, legend) series.
struct Panel {
    title: String,
    unit: String,
    series: Vec<(String, f64, String)>,
}

fn panel(title: &str, unit: &str, series: &[(&str, f64, &str)]) -> Panel {
    Panel {
        title: title.into(),
        unit: unit.into(),
        series: series.iter().map(|(c, k, l)| (c.to_string(), *k, l.to_string())).collect(),
    }
}

/// The standard panels, then one per `--metric`.
fn panels(extra: &[String]) -> Vec<Panel> {
    let mib = 1.0 / 1048576.0;
    let gib = 1.0 / 1073741824.0;
    let mut p = vec![
        panel(
            "Process tree CPU",
            "% of one core",
            &[("proc_cpu_util_percent_user", 1.0, "user"), ("proc_cpu_util_percent_system", 1.0, "system")],
        ),
        panel("Run-queue wait", "% of the window", &[("proc_runq_wait_percent", 1.0, "waiting runnable")]),
        panel("Process tree memory", "MiB", &[("proc_mem_rss", mib, "RSS"), ("proc_mem_pss", mib, "PSS")]),
        panel(
            "Process tree IO (read/write syscalls)",
            "MiB/s",
            &[("proc_disk_read_throughput_mibps", 1.0, "read"), ("proc_disk_write_throughput_mibps", 1.0, "write")],
        ),
        panel(
            "System CPU",
            "% of all CPUs",
            &[
                ("system_cpu_util_percent_user", 1.0, "user"),
                ("system_cpu_util_percent_system", 1.0, "system"),
                ("system_cpu_util_percent_iowait", 1.0, "iowait"),
            ],
        ),
        panel("System memory", "GiB", &[("system_mem_used", gib, "used"), ("system_mem_available", gib, "available")]),
    ];
    for m in extra {
        p.push(Panel {
            title: m.clone(),
            unit: "as recorded (see README)".into(),
            series: vec![(m.clone(), 1.0, m.clone())],
        });
    }
    p
}

/// What went wrong drawing.
fn draw_err<E: std::fmt::Debug>(e: E) -> ReadError {
    ReadError::Lib(format!("drawing: {e:?}"))
}

/// Column `name` of `t` as (seconds since the first row, value) with None
/// for a missing value (the line breaks there).
fn points(t: &TableData, name: &str, scale: f64) -> Option<Vec<(f64, Option<f64>)>> {
    let ti = t.columns.iter().position(|c| c == "unixtime")?;
    let ci = t.columns.iter().position(|c| c == name)?;
    let t0 = t.rows.first()?[ti].number()?;
    Some(
        t.rows
            .iter()
            .filter_map(|r| {
                let x = r[ti].number()? - t0;
                let y = r[ci].number().filter(|v| v.is_finite()).map(|v| v * scale);
                Some((x, y))
            })
            .collect(),
    )
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Draws the figure for `files` (with `labels`) on `root`.
fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    tables: &[(String, TableData)],
    panels: &[Panel],
) -> Result<(), ReadError>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(draw_err)?;
    let areas = root.split_evenly((panels.len(), 1));
    let multi = tables.len() > 1;
    for (area, p) in areas.iter().zip(panels) {
        // Every line of this panel: (legend, points).
        let mut lines = Vec::new();
        for (label, t) in tables {
            for (col, scale, legend) in &p.series {
                if let Some(pts) = points(t, col, *scale) {
                    let name = if multi { format!("{label}: {legend}") } else { legend.clone() };
                    lines.push((name, pts));
                }
            }
        }
        let xmax = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).fold(0.0f64, f64::max).max(1e-3);
        let ys = || lines.iter().flat_map(|(_, p)| p.iter().filter_map(|q| q.1));
        let (ymin, ymax) = (ys().fold(0.0f64, f64::min), ys().fold(0.0f64, f64::max));
        let ymax = if ymax <= ymin { ymin + 1.0 } else { ymax + (ymax - ymin) * 0.05 };
        let mut chart = ChartBuilder::on(area)
            .caption(&p.title, ("sans-serif", 18))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xmax, ymin..ymax)
            .map_err(draw_err)?;
        chart.configure_mesh().x_desc("time since the first sample (s)").y_desc(&p.unit).draw().map_err(draw_err)?;
        if lines.is_empty() {
            continue;
        }
        for (i, (name, pts)) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            // One segment per run of known values: a gap stays a gap.
            let mut first = true;
            for seg in pts.split(|q| q.1.is_none()).filter(|s| !s.is_empty()) {
                let s = chart
                    .draw_series(LineSeries::new(seg.iter().filter_map(|q| Some((q.0, q.1?))), color.stroke_width(2)))
                    .map_err(draw_err)?;
                if std::mem::take(&mut first) {
                    s.label(name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                }
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(draw_err)?;
    }
    root.present().map_err(draw_err)
}

/// Thread groups drawn by `--threads` (the ones with the most CPU).
const GROUPS: usize = 8;

/// Adds to `ts` one column per thread group of `groups` (the `GROUPS` with
/// the most CPU over the recording), stacked: each column is its group's
/// CPU plus every column before it, so the lines are the edges of a stack.
/// Returns the new columns with their legends.
fn stack_groups(ts: &mut TableData, groups: &TableData) -> Vec<(String, String)> {
    let col = |t: &TableData, n: &str| t.columns.iter().position(|c| c == n);
    let (Some(t_ix), Some(g_time), Some(pid), Some(name), Some(cpu), Some(win)) = (
        col(ts, "unixtime"),
        col(groups, "unixtime"),
        col(groups, "pid"),
        col(groups, "thread_group"),
        col(groups, "cpu_util_percent_total"),
        col(groups, "window_seconds"),
    ) else {
        return Vec::new();
    };
    let key = |r: &[read::Cell]| {
        let p = r[pid].number().unwrap_or(0.0);
        let n = match &r[name] {
            read::Cell::Str(s) => s.clone(),
            _ => String::new(),
        };
        format!("{n} (pid {p})")
    };
    let mut totals: std::collections::BTreeMap<String, f64> = Default::default();
    for r in &groups.rows {
        let part = r[cpu].number().filter(|v| v.is_finite()).unwrap_or(0.0) * r[win].number().unwrap_or(0.0);
        *totals.entry(key(r)).or_default() += part;
    }
    let mut top: Vec<(String, f64)> = totals.into_iter().collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1));
    top.truncate(GROUPS);
    let mut out = Vec::new();
    let mut below = vec![0.0; ts.rows.len()];
    for (k, _) in &top {
        let values: std::collections::HashMap<u64, f64> = groups
            .rows
            .iter()
            .filter(|r| key(r) == *k)
            .filter_map(|r| Some((r[g_time].number()?.to_bits(), r[cpu].number()?)))
            .collect();
        let column = format!("thread group {k}");
        for (row, b) in ts.rows.iter_mut().zip(below.iter_mut()) {
            let v = row[t_ix].number().and_then(|t| values.get(&t.to_bits())).copied().filter(|v| v.is_finite());
            *b += v.unwrap_or(0.0);
            row.push(read::Cell::F64(if v.is_some() { *b } else { f64::NAN }));
        }
        ts.columns.push(column.clone());
        out.push((column, format!("+ {k}")));
    }
    out
}

/// Plots `files` (labelled `labels`, else their file names) into `out`;
/// the format follows its extension: .png, .svg or .html (an SVG in a page).
/// With `threads`, a panel stacks the CPU of the top thread groups.
pub fn plot(
    files: &[std::path::PathBuf],
    labels: &[String],
    metrics: &[String],
    threads: bool,
    out: &Path,
) -> Result<(), ReadError> {
    let mut tables = Vec::new();
    let mut stacked: Vec<(String, String)> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let file = read::open(f)?;
        let mut t = read::read_table(&file, "messer_timeseries")?;
        if threads {
            let groups = read::read_table(&file, "messer_thread_groups")?;
            for s in stack_groups(&mut t, &groups) {
                if !stacked.contains(&s) {
                    stacked.push(s);
                }
            }
        }
        let label = labels.get(i).cloned().unwrap_or_else(|| {
            f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| format!("file {}", i + 1))
        });
        tables.push((label, t));
    }
    let mut all = panels(metrics);
    if threads {
        all.insert(
            1,
            Panel {
                title: "CPU by thread group (stacked)".into(),
                unit: "% of one core".into(),
                series: stacked.iter().map(|(c, l)| (c.clone(), 1.0, l.clone())).collect(),
            },
        );
    }
    // Panels with nothing to show in any file are left out.
    let panels: Vec<Panel> = all
        .into_iter()
        .filter(|p| tables.iter().any(|(_, t)| p.series.iter().any(|(c, _, _)| t.columns.contains(c))))
        .collect();
    for m in metrics {
        if !tables.iter().any(|(_, t)| t.columns.contains(m)) {
            return Err(ReadError::NoColumn {
                file: files[0].display().to_string(),
                table: "messer_timeseries".into(),
                column: m.clone(),
            });
        }
    }
    let size = (1200, 260 * panels.len().max(1) as u32);
    match out.extension().and_then(|e| e.to_str()) {
        Some("png") => {
            let root = BitMapBackend::new(out, size).into_drawing_area();
            draw(&root, &tables, &panels)
        }
        Some("svg") => {
            let root = SVGBackend::new(out, size).into_drawing_area();
            draw(&root, &tables, &panels)
        }
        Some("html") => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
                draw(&root, &tables, &panels)?;
            }
            let names: Vec<&str> = tables.iter().map(|(l, _)| l.as_str()).collect();
            let html = format!(
                "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>messer: {}</title></head>\n<body>\n{svg}\n</body></html>\n",
                names.join(", ")
            );
            std::fs::write(out, html).map_err(|e| ReadError::Lib(format!("writing {}: {e}", out.display())))
        }
        _ => Err(ReadError::Open {
            path: out.display().to_string(),
            reason: "the output must end in .png, .svg or .html".into(),
        }),
    }
}
