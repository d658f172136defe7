//! A stalled disk never delays sampling: the output lives on a loop-mounted
//! ext4 file system that is frozen (`fsfreeze`) for seconds while messer
//! records; the writer blocks, the sampler does not.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use messer_tests::*;

/// A small ext4 file system on a loop device, unfrozen and unmounted on drop.
struct Frozen {
    mnt: PathBuf,
    _dir: tempfile::TempDir,
}

fn sh(cmd: &str) {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
}

impl Frozen {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        sh(&format!(
            "truncate -s 64M {0} && mkfs.ext4 -q -F {0} && mount -o loop {0} {1}",
            img.display(),
            mnt.display()
        ));
        Frozen { mnt, _dir: dir }
    }

    fn freeze(&self, on: bool) {
        sh(&format!("fsfreeze {} {}", if on { "-f" } else { "-u" }, self.mnt.display()));
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let m = self.mnt.display();
        let _ = Command::new("sh").arg("-c").arg(format!("fsfreeze -u {m} 2>/dev/null; umount {m}")).status();
    }
}

fn attr(path: &Path, name: &str) -> serde_json::Value {
    read_table(path, "messer_timeseries", &[])["_attrs"][name].clone()
}

/// Records `seconds` at `interval` with the disk frozen from 1 s to 4 s;
/// returns the copied file.
fn record_through_a_freeze(fs: &Frozen, interval: &str, seconds: &str, copy: &Path) {
    let out = fs.mnt.join("x.h5");
    let args = ["--mode", "procfs", "--pid", "1", "--no-pss", "--interval", interval, "--duration", seconds, "-o"];
    let (m, log) = start_recording(&[&args[..], &[out.to_str().unwrap()]].concat());
    std::thread::sleep(Duration::from_secs(1));
    fs.freeze(true);
    std::thread::sleep(Duration::from_secs(3));
    fs.freeze(false);
    let o = m.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", log.lock().unwrap());
    std::fs::copy(&out, copy).unwrap();
}

#[test]
#[ignore = "needs root"]
fn a_frozen_disk_does_not_delay_sampling() {
    if !require_root("a_frozen_disk_does_not_delay_sampling") {
        return;
    }
    let fs = Frozen::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("slow.h5");
    record_through_a_freeze(&fs, "0.05", "6", &copy);
    let t = read_table(&copy, "messer_timeseries", &["monotime", "window_seconds"]);
    let w: Vec<f64> = column(&t, "window_seconds").into_iter().flatten().collect();
    let worst = w.iter().map(|x| (x - 0.05).abs()).fold(0.0, f64::max);
    println!("disk frozen 3 s at 0.05 s: {} rows, worst window {worst:.6} s off", w.len());
    assert_eq!(w.len(), 120, "every sample was kept");
    // A sampler that waited for the frozen disk would be seconds late; the
    // bound is half an interval because this VM's vCPUs are now and then
    // descheduled by the host for milliseconds (steal: 5.0 ms seen once).
    assert!(worst < 0.025, "windows stayed on time: {worst}");
    assert_eq!(attr(&copy, "messer_rows_lost"), 0);

    // At 1 ms the queue (4096 rows) overflows during 3 s: rows are dropped
    // and counted, and sampling still keeps time.
    std::fs::remove_file(fs.mnt.join("x.h5")).unwrap();
    let copy = dir.path().join("fast.h5");
    record_through_a_freeze(&fs, "0.001", "5", &copy);
    let lost = attr(&copy, "messer_rows_lost").as_i64().unwrap();
    let rows = column(&read_table(&copy, "messer_timeseries", &["monotime"]), "monotime").len() as i64;
    println!("disk frozen 3 s at 1 ms: {rows} rows kept, {lost} lost (counted)");
    assert!(lost > 1000, "{lost}");
}
