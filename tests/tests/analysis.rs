//! `messer inspect` and `messer export` read a real recording back: the
//! export equals what pandas reads from the HDF5 file.

use messer_tests::*;

fn recording(dir: &std::path::Path) -> std::path::PathBuf {
    let out = dir.join("rec.h5");
    let status = messer()
        .args(["--mode", "procfs", "--interval", "0.2", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", "sleep 0.5 & sleep 1; wait"])
        .status()
        .unwrap();
    assert!(status.success());
    out
}

#[test]
fn inspect_shows_metadata_tables_and_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let file = recording(dir.path());
    let o = run({
        let mut c = messer();
        c.arg("inspect").arg(&file);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    for want in [
        "messer_mode: procfs",
        "messer_launched_command: sh -c",
        "table /messer_timeseries:",
        "table /messer_processes:",
        "table /messer_process_info:",
        "time span:",
        "proc_cpu_util_percent_total",
        "system_mem_total",
        "table /messer_events:",
        "CPU credits per program (1 credit = 1 vCPU-minute):",
        "CPU credits per user",
        "(2 processes)",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

#[test]
fn csv_and_json_exports_equal_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = recording(dir.path());
    for table in ["messer_timeseries", "messer_processes", "messer_process_info"] {
        let csv = dir.path().join(format!("{table}.csv"));
        let o = run({
            let mut c = messer();
            c.arg("export").arg(&file).args(["--format", "csv", "--table", table, "-o"]).arg(&csv);
            c
        });
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let check = std::process::Command::new(python())
            .arg(workspace().join("tests/py/compare_export.py"))
            .arg(&file)
            .arg(table)
            .arg(&csv)
            .output()
            .unwrap();
        assert!(check.status.success(), "{table}: {}", String::from_utf8_lossy(&check.stderr));
    }
    let o = run({
        let mut c = messer();
        c.arg("export").arg(&file).args(["--format", "json"]);
        c
    });
    assert!(o.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let t = read_table(&file, "messer_timeseries", &["proc_cpu_util_percent_user"]);
    assert_eq!(rows.len(), t["_rows"].as_u64().unwrap() as usize);
    let user = column(&t, "proc_cpu_util_percent_user");
    for (r, u) in rows.iter().zip(&user) {
        match u {
            Some(v) => assert_eq!(r["proc_cpu_util_percent_user"].as_f64(), Some(*v)),
            None => assert!(r["proc_cpu_util_percent_user"].is_null(), "a missing value is null"),
        }
    }
}

#[test]
fn a_file_that_is_not_there_is_bad_input() {
    let o = run({
        let mut c = messer();
        c.args(["inspect", "/no/such/file.h5"]);
        c
    });
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
}

fn storage(file: &std::path::Path) -> serde_json::Value {
    let o =
        std::process::Command::new(python()).arg(workspace().join("tests/py/storage.py")).arg(file).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// After a clean end the tables are compressed, with every row and
/// attribute; `--no-compress` leaves them as written.
#[test]
fn a_finished_file_is_compressed_with_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = recording(dir.path());
    let s = storage(&file);
    for table in ["messer_timeseries", "messer_processes", "messer_process_info"] {
        assert_eq!(s[table]["compression"], "gzip", "{table}");
        assert_eq!(s[table]["rows"], s[table]["nrows_attr"], "{table}");
    }
    let attrs: Vec<&str> =
        s["messer_timeseries"]["attrs"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    for a in ["messer_mode", "messer_child_exit_code", "invocation_time_unix", "FIELD_0_NAME", "TITLE"] {
        assert!(attrs.contains(&a), "attribute {a} kept: {attrs:?}");
    }
    assert!(!dir.path().join("rec.h5.compacting").exists());

    let raw = dir.path().join("raw.h5");
    let status = messer()
        .args(["--mode", "procfs", "--no-compress", "-o"])
        .arg(&raw)
        .args(["--", "sleep", "0.3"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(storage(&raw)["messer_timeseries"]["compression"].is_null());
}

#[test]
fn the_readme_pandas_snippet_runs_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = recording(dir.path());
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let start = readme.find("## Reading the file").unwrap();
    let block = &readme[start..];
    let code = block.split("```python\n").nth(1).unwrap().split("```").next().unwrap();
    let script = dir.path().join("snippet.py");
    std::fs::write(&script, code.replace("run1.h5", file.to_str().unwrap())).unwrap();
    let o = std::process::Command::new(python()).arg(&script).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("count") && out.contains("target_found"), "{out}");
}

#[test]
fn plot_renders_a_png_with_content_and_svg_and_html() {
    let dir = tempfile::tempdir().unwrap();
    let a = recording(dir.path());
    let b = dir.path().join("rec2.h5");
    std::fs::copy(&a, &b).unwrap();
    let png = dir.path().join("fig.png");
    let o = run({
        let mut c = messer();
        c.arg("plot").arg(&a).arg(&b).args(["--label", "one", "--label", "two", "--metric", "proc_num_threads", "-o"]);
        c.arg(&png);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&png).expect("a PNG that decodes").to_rgb8();
    let (w, h) = img.dimensions();
    assert_eq!(w, 1200);
    assert!(h >= 260 * 4, "several panels: {h} px high");
    let colored = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let distinct: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    assert!(
        colored > (w * h / 50) as usize && distinct.len() > 20,
        "{colored} drawn pixels, {} colours",
        distinct.len()
    );
    for ext in ["svg", "html"] {
        let out = dir.path().join(format!("fig.{ext}"));
        let o = run({
            let mut c = messer();
            c.arg("plot").arg(&a).arg("-o").arg(&out);
            c
        });
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&out).unwrap();
        assert!(text.contains("<svg") && text.contains("Process tree CPU"), "{ext}");
    }
    let bad = run({
        let mut c = messer();
        c.arg("plot").arg(&a).args(["--metric", "no_such_column", "-o"]).arg(dir.path().join("x.png"));
        c
    });
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn completions_and_man_page_come_from_the_cli() {
    for (args, want) in [(&["completions", "bash"][..], "--pid-command"), (&["man"][..], ".TH messer 1")] {
        let o = run({
            let mut c = messer();
            c.args(args);
            c
        });
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains(want), "{args:?}");
    }
}
