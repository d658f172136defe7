//! `--rotate-size` starts new files of a series, `--retain-size` deletes the
//! oldest; every file is a complete recording carrying its series index.

use messer_tests::*;

#[test]
fn rotation_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("run.h5");
    let o = run({
        let mut c = messer();
        c.args(["--mode", "procfs", "--pid", "1", "--no-children", "--interval", "0.005", "--duration", "4"]);
        c.args(["--no-compress", "--rotate-size", "0.2", "--retain-size", "0.7", "-o"]).arg(&base);
        c
    });
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    println!("series left: {names:?}");
    assert!(!base.exists(), "the oldest file was deleted: {names:?}");
    assert!(names.len() >= 2 && names.len() <= 4, "{names:?}");
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    assert!(total <= (0.7 * 1048576.0) as u64 + 300_000, "{total} bytes kept");
    let mut last_index = None;
    let mut last_time = 0.0;
    for f in &files {
        let t = read_table(f, "messer_timeseries", &["monotime"]);
        let idx = t["_attrs"]["messer_series_index"].as_i64().unwrap();
        if let Some(p) = last_index {
            assert_eq!(idx, p + 1, "consecutive indices");
        }
        last_index = Some(idx);
        let times: Vec<f64> = column(&t, "monotime").into_iter().flatten().collect();
        assert!(!times.is_empty());
        assert!(times[0] > last_time, "files follow each other in time");
        last_time = *times.last().unwrap();
        assert_eq!(t["_attrs"]["messer_mode"], "procfs", "every file has the metadata");
    }
}

#[test]
fn retain_without_rotate_is_bad_input() {
    let o = run({
        let mut c = messer();
        c.args(["--pid", "1", "--retain-size", "5"]);
        c
    });
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--retain-size needs --rotate-size"));
}
