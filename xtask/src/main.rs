//! Project tasks: `cargo xtask setup | build | run | test | bench`.
//!
//! `setup` installs, idempotently, everything beyond rustup's stable
//! toolchain that building and testing messer needs; the other tasks run it
//! first, so a fresh Debian machine needs nothing but these commands.

mod bench;
mod kernel;
mod setup;
mod soak;

use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the system packages, bpf-linker, the BPF toolchain link and the Python venv.
    Setup,
    /// Set up, then build messer (with its BPF programs) in release mode.
    Build,
    /// Set up, build, and run messer as root with the given arguments.
    Run {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up, build, and measure messer's cost and accuracy (as root): prints a
    /// table and writes BENCHMARKS.md.
    Bench {
        /// A shorter run (under 3 minutes) for a smoke check.
        #[arg(long)]
        quick: bool,
    },
    /// Set up, build, and record the switch-heavy workload at 10 ms for a long
    /// time (as root); reports messer's RSS growth into SOAK.md.
    Soak {
        /// How long (the soak is an hour).
        #[arg(long, default_value_t = 60.0)]
        minutes: f64,
    },
    /// Set up, build, and run messer's correctness tests on Debian 12's
    /// stock kernel (6.1) booted in QEMU (as root); prints a table per test.
    TestKernel {
        /// Run the same suites on this machine's kernel too, side by side.
        #[arg(long)]
        host: bool,
        /// Only these suites (repeatable; default: all of kernel::SUITES).
        #[arg(long = "suite", value_name = "NAME")]
        suites: Vec<String>,
    },
    /// Set up, build, and run every test (unit and root integration tests).
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = Args::parse();
    let root = setup::workspace_root()?;
    std::env::set_current_dir(&root)?;
    match args.task {
        Task::Setup => setup::ensure(),
        Task::Build => {
            setup::ensure()?;
            build()
        }
        Task::Run { args } => {
            setup::ensure()?;
            build()?;
            let bin = root.join("target/release/messer");
            let mut cmd = if setup::is_root() {
                Command::new(&bin)
            } else {
                let mut c = Command::new("sudo");
                c.arg(&bin);
                c
            };
            let status = cmd.args(&args).status().context("starting messer")?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Task::Bench { quick } => {
            prepare_as_root("bench")?;
            bench::run(&root, quick)
        }
        Task::Soak { minutes } => {
            prepare_as_root("soak")?;
            soak::run(&root, minutes)
        }
        Task::TestKernel { host, suites } => {
            prepare_as_root("test-kernel")?;
            kernel::run(&root, host, &suites)
        }
        Task::Test { args } => {
            setup::ensure()?;
            build()?;
            test(&args)
        }
    }
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn check(mut cmd: Command, what: &str) -> Result<()> {
    eprintln!("xtask: {what}");
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Setup and build for a task that loads BPF programs, which needs root.
fn prepare_as_root(task: &str) -> Result<()> {
    setup::ensure()?;
    build()?;
    if !setup::is_root() {
        bail!("the {task} loads BPF programs: run it as root (sudo -E cargo xtask {task})");
    }
    Ok(())
}

fn build() -> Result<()> {
    let mut c = cargo();
    c.args(["build", "--release"]);
    setup::bpf_env(&mut c);
    check(c, "cargo build --release")
}

/// Unit tests, then integration tests one at a time: they measure CPU time
/// and must not compete for the two cores with each other. Ends with one
/// summary line, `test: N passed, N failed`.
fn test(extra: &[String]) -> Result<()> {
    use std::io::{BufRead as _, BufReader};
    // The workspace's lints first (Cargo.toml, [workspace.lints]).
    let mut lint = cargo();
    lint.args(["clippy", "--release", "--all-targets", "--", "-D", "warnings"]);
    setup::bpf_env(&mut lint);
    check(lint, "cargo clippy --release --all-targets -- -D warnings")?;
    let mut c = cargo();
    c.args(["test", "--release", "--lib", "--bins", "--tests"]);
    setup::bpf_env(&mut c);
    if !setup::is_root() {
        // The integration tests load BPF programs.
        c.env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", "sudo -E");
    }
    c.args(extra);
    // Tests that need root are #[ignore = "needs root"] for a plain
    // `cargo test`; here they run (as root, or through sudo).
    c.args(["--", "--test-threads=1", "--include-ignored"]);
    eprintln!("xtask: cargo test --release -- --test-threads=1 --include-ignored");
    let mut child = c.stdout(std::process::Stdio::piped()).spawn().context("starting cargo test")?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let count = |word: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim().trim_start_matches("ok. ").trim_start_matches("FAILED. ").strip_suffix(word)
                        })
                        .and_then(|n| n.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                passed += count(" passed");
                failed += count(" failed");
            }
        }
    }
    let status = child.wait()?;
    println!("test: {passed} passed, {failed} failed");
    if !status.success() {
        bail!("cargo test failed ({status})");
    }
    Ok(())
}
