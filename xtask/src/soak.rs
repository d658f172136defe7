//! `cargo xtask soak [--minutes N]`: messer in ebpf mode at 10 ms on the
//! switch-heavy workload (500 ping-pong pairs, 1000 threads) for N minutes
//! (default 60); reports messer's RSS over time and its growth after the
//! first minute (target: under 5 MB), and appends the result to SOAK.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

pub fn run(root: &Path, minutes: f64) -> Result<()> {
    let secs = (minutes * 60.0).round() as u64;
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("soak.h5");
    let w = Command::new(root.join("target/release/messer-workload"))
        .args(["pingpong", "--pairs", "500", "--seconds", &format!("{}", secs + 5)])
        .stdout(Stdio::null())
        .spawn()
        .context("workload")?;
    let m = Command::new(root.join("target/release/messer"))
        .args(["--mode", "ebpf", "--interval", "0.01", "--quiet", "--duration", &secs.to_string(), "--pid"])
        .arg(w.id().to_string())
        .arg("-o")
        .arg(&out)
        .stderr(Stdio::null())
        .spawn()
        .context("messer")?;
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut m = m;
    loop {
        if let Some(r) = rss_kib(m.id()) {
            samples.push((t0.elapsed().as_secs_f64(), r));
        }
        if m.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    let mut w = w;
    let _ = w.kill();
    let _ = w.wait();
    // Growth while recording; what the final compression of the file takes
    // (after --duration) is reported apart, as the peak.
    let recording: Vec<(f64, u64)> = samples.iter().copied().filter(|s| s.0 < secs as f64 - 1.0).collect();
    let after_1min = recording.iter().find(|s| s.0 >= 60.0_f64.min(secs as f64 / 2.0)).map(|s| s.1);
    let (Some(first), Some(last)) = (after_1min, recording.last().map(|s| s.1)) else {
        bail!("no RSS samples of messer");
    };
    let peak = samples.iter().map(|s| s.1).max().unwrap_or(0);
    // RSS every tenth of the run, to show the shape of any growth.
    let step = (secs as f64 / 10.0).max(5.0);
    let mut marks = Vec::new();
    let mut next = step;
    for s in &recording {
        if s.0 >= next {
            marks.push(format!("{:.0} min {} KiB", s.0 / 60.0, s.1));
            next += step;
        }
    }
    let growth_mb = (last as f64 - first as f64) / 1024.0;
    let rows = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let verdict = if growth_mb < 5.0 { "met" } else { "MISSED" };
    let line = format!(
        "{}: {minutes} min at 10 ms, 500 ping-pong pairs, ebpf: RSS {first} KiB after the first minute, {last} KiB at the end, peak {peak} KiB (with the final compression); growth {growth_mb:.2} MB (target < 5 MB: {verdict}); file {:.1} MiB; RSS over time: {}",
        std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        rows as f64 / 1048576.0,
        marks.join(", ")
    );
    println!("{line}");
    let path = root.join("SOAK.md");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Soak runs (`cargo xtask soak`)\n\nmesser's RSS over a long recording at 10 ms on the switch-heavy workload.\n\n".into()
    });
    text.push_str(&format!("- {line}\n"));
    std::fs::write(&path, text)?;
    Ok(())
}
