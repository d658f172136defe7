//! `cargo xtask setup`: idempotent installation of what messer needs beyond
//! rustup's stable toolchain, each step printed and skipped when done.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// Debian packages: the BPF toolchain (Debian's rustc with a prebuilt core for
/// bpfel-unknown-none; LLVM 22 for bpf-linker), HDF5, and what tests use
/// (including the Prometheus and InfluxDB servers the exporter tests start).
const PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "libhdf5-dev",
    "pkg-config",
    "python3-venv",
    "util-linux",
    // `messer plot`: fonts through fontconfig.
    "libfontconfig-dev",
    "fonts-dejavu-core",
    // Peers measured side by side by `cargo xtask bench` (pidstat).
    "sysstat",
    // Real servers for the exporter tests (started by the tests on loopback)
    // and the fork-per-connection server test (a unix socket in a temp dir).
    "prometheus",
    "influxdb",
    "postgresql",
    // A server with thousands of sockets (nginx under wrk's keep-alive
    // connections; ss from iproute2 is the truth). Its package starts no
    // service where PID 1 is not an init that runs them.
    "nginx-light",
    "wrk",
    "iproute2",
];

/// bpf-linker, built against LLVM 22 (newer releases need a newer rustc).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The rustup toolchain name under which Debian's rustc is linked; messer's
/// build script builds the BPF programs with it.
pub const BPF_TOOLCHAIN: &str = "messer-bpf";

/// Python packages the tests use to read files back, pinned.
const PYTHON_PACKAGES: &[&str] =
    &["h5py==3.16.0", "pandas==3.1.1", "tables==3.11.1", "numpy==2.4.6", "psrecord==1.4", "psutil==7.2.2"];

const LLVM_BIN: &str = "/usr/lib/llvm-22/bin";

pub fn workspace_root() -> Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    dir.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

pub fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Environment for cargo commands that build the BPF programs.
pub fn bpf_env(cmd: &mut Command) {
    let cargo_bin = std::env::var("HOME").map(|h| format!("{h}/.cargo/bin")).unwrap_or_default();
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{cargo_bin}:{path}"));
}

fn step(name: &str) {
    eprintln!("setup: {name}");
}

fn quiet_ok(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).status().map(|s| s.success()).unwrap_or(false)
}

fn run(mut cmd: Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// `cmd` as root: directly, or through sudo.
fn as_root(program: &str) -> Command {
    if is_root() {
        Command::new(program)
    } else {
        let mut c = Command::new("sudo");
        c.arg(program);
        c
    }
}

pub fn ensure() -> Result<()> {
    check_system()?;
    apt_packages()?;
    toolchain_link()?;
    bpf_linker()?;
    python_venv()?;
    tracefs();
    eprintln!("setup: done");
    Ok(())
}

fn check_system() -> Result<()> {
    let os = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let is_debian = os.lines().any(|l| l == "ID=debian" || l.starts_with("ID_LIKE=") && l.contains("debian"));
    if !is_debian || !Path::new("/usr/bin/apt-get").exists() {
        bail!(
            "this setup supports Debian 12 (bookworm) with apt; on another system install the equivalents of: \
             {}, bpf-linker {BPF_LINKER_VERSION} (LLVM 22), and Python packages {}",
            PACKAGES.join(" "),
            PYTHON_PACKAGES.join(" ")
        );
    }
    if !is_root() && !quiet_ok(Command::new("sudo").args(["-n", "true"])) {
        bail!("setup installs system packages: run it as root or with password-less sudo");
    }
    Ok(())
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt_packages() -> Result<()> {
    install_debian(PACKAGES)
}

/// Installs whichever of `packages` are missing (apt-get, as root).
pub fn install_debian(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        step(&format!("Debian packages {}: installed", packages.join(" ")));
        return Ok(());
    }
    step(&format!("Debian packages: installing {}", missing.join(" ")));
    run(
        {
            let mut c = as_root("apt-get");
            c.arg("update");
            c
        },
        "apt-get update",
    )?;
    let mut c = as_root("env");
    c.args(["DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "--no-install-recommends"]).args(&missing);
    run(c, "apt-get install")
}

fn toolchain_link() -> Result<()> {
    let list = Command::new("rustup").args(["toolchain", "list"]).output().context("running rustup")?;
    if String::from_utf8_lossy(&list.stdout).lines().any(|l| l.starts_with(BPF_TOOLCHAIN)) {
        step(&format!("rustup toolchain {BPF_TOOLCHAIN}: linked"));
        return Ok(());
    }
    step(&format!("rustup toolchain {BPF_TOOLCHAIN}: linking Debian's rustc (/usr)"));
    let mut c = Command::new("rustup");
    c.args(["toolchain", "link", BPF_TOOLCHAIN, "/usr"]);
    run(c, "rustup toolchain link")
}

fn bpf_linker() -> Result<()> {
    let out = Command::new("bpf-linker").arg("--version").output();
    if let Ok(o) = out
        && String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION)
    {
        step(&format!("bpf-linker {BPF_LINKER_VERSION}: installed"));
        return Ok(());
    }
    step(&format!("bpf-linker {BPF_LINKER_VERSION}: building with LLVM 22 (a few minutes)"));
    let path = std::env::var("PATH").unwrap_or_default();
    let mut c = Command::new("cargo");
    c.env("PATH", format!("{LLVM_BIN}:{path}")).args([
        "install",
        "--locked",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--no-default-features",
        "--features",
        "llvm-22",
    ]);
    run(c, "cargo install bpf-linker")
}

fn python_venv() -> Result<()> {
    let root = workspace_root()?;
    let py = root.join(".venv/bin/python");
    let mut check = Command::new(&py);
    check.args(["-c", "import h5py, pandas, tables, psutil, psrecord"]);
    if py.exists() && quiet_ok(&mut check) {
        step("Python venv .venv: ready");
        return Ok(());
    }
    step(&format!("Python venv .venv: installing {}", PYTHON_PACKAGES.join(" ")));
    let mut c = Command::new("python3");
    c.args(["-m", "venv"]).arg(root.join(".venv"));
    run(c, "python3 -m venv")?;
    let mut c = Command::new(root.join(".venv/bin/pip"));
    c.args(["install", "--quiet"]).args(PYTHON_PACKAGES);
    run(c, "pip install")
}

fn tracefs() {
    if Path::new("/sys/kernel/tracing/events").is_dir() || Path::new("/sys/kernel/debug/tracing/events").is_dir() {
        step("tracefs: mounted");
    } else {
        step("tracefs: not mounted; messer mounts it at /sys/kernel/tracing when it runs as root");
    }
}

/// Installs `packages` (pinned) into the project's venv unless `module`
/// imports already.
pub fn install_python(module: &str, packages: &[&str]) -> Result<()> {
    let root = workspace_root()?;
    let py = root.join(".venv/bin/python");
    let mut check = Command::new(&py);
    check.args(["-c", &format!("import {module}")]);
    if quiet_ok(&mut check) {
        step(&format!("Python {}: installed", packages.join(" ")));
        return Ok(());
    }
    step(&format!("Python venv .venv: installing {}", packages.join(" ")));
    let mut c = Command::new(root.join(".venv/bin/pip"));
    c.args(["install", "--quiet"]).args(packages);
    run(c, "pip install")
}
