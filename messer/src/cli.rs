//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Records the resource use of one process tree over time into an HDF5 file.
#[derive(Debug, Parser)]
#[command(name = "messer", version, about, long_about = None, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// Read a recording back instead of recording.
    #[command(subcommand)]
    pub action: Option<Action>,

    /// Process id of the process to record (with its child processes).
    #[arg(long, value_name = "PID", allow_hyphen_values = true, group = "target")]
    pub pid: Option<i32>,

    /// A shell command that prints the pid to record (run with `sh -c`, as
    /// the invoking user under sudo). Re-run every interval until it prints
    /// exactly one pid; when that process is gone, run again to follow the
    /// next one. Records until stopped or --duration.
    #[arg(long, value_name = "CMD", group = "target")]
    pub pid_command: Option<String>,

    /// Record every process running a program of this name (the kernel's
    /// comm, at most 15 characters), including instances started later;
    /// ebpf mode starts counting at their exec. Records until stopped or
    /// --duration.
    #[arg(long, value_name = "NAME", group = "target")]
    pub comm: Option<String>,

    /// Record every process in this cgroup v2 and the cgroups below it
    /// (a directory, absolute or relative to the cgroup2 mount), including
    /// processes that enter it later, from that instant; a process moved
    /// out stops counting. Records until stopped or --duration.
    #[arg(long, value_name = "PATH", group = "target")]
    pub cgroup: Option<PathBuf>,

    /// Record the processes of this systemd unit (its cgroup, as with
    /// --cgroup).
    #[arg(long, value_name = "NAME", group = "target")]
    pub unit: Option<String>,

    /// Stop after this many seconds.
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub duration: Option<f64>,

    /// A command to launch and record from its first instruction (as the
    /// invoking user under sudo); messer exits with its exit status.
    #[arg(last = true, value_name = "CMD", group = "target")]
    pub command: Vec<String>,

    /// How to measure: ebpf (exact, needs root), procfs (/proc only), auto
    /// (ebpf when BPF programs can be loaded, else procfs with a warning), or
    /// both (ebpf into /messer_timeseries and procfs into
    /// /messer_procfs_timeseries, on the same ticks; see `messer compare`).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    pub mode: Mode,

    /// Seconds between samples (at least 0.001).
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5, allow_hyphen_values = true)]
    pub interval: f64,

    /// The HDF5 file to write [default: messer_<pid>_<local time>.h5 in the current directory].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,

    /// A free-text label stored in the file's metadata.
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub label: String,

    /// Also a row per thread per window (/messer_threads) and per thread
    /// group (/messer_thread_groups): CPU, run-queue wait, switches.
    #[arg(long)]
    pub threads: bool,

    /// ebpf mode: the distribution of the tree's run-queue waits per window
    /// (p50, p90, p99, max, and the histogram in /messer_runq_latency).
    #[arg(long)]
    pub runq_latency: bool,

    /// Record only the target process, not the processes it starts.
    #[arg(long)]
    pub no_children: bool,

    /// Capacity of the eBPF probe's process maps; processes beyond it are
    /// counted as dropped.
    #[arg(long, value_name = "N", default_value_t = 16384, allow_hyphen_values = true)]
    pub max_processes: u32,

    /// Capacity of the eBPF probe's thread map (run-queue wait); threads
    /// beyond it are counted in ebpf_thread_insert_failed.
    #[arg(long, value_name = "N", default_value_t = 65536, allow_hyphen_values = true)]
    pub max_threads: u32,

    /// ebpf mode: count read/write/send/recv syscalls in the kernel (exact
    /// per family, short-lived processes included). Off by default: enabling
    /// syscall tracepoints slows every syscall on the machine (a pipe
    /// ping-pong by 11 %, against 4 % without); without it the read/write figures come from
    /// /proc/<pid>/io as in procfs mode.
    #[arg(long)]
    pub io_syscalls: bool,

    /// ebpf mode: record the run count and run time of each of messer's BPF
    /// programs per window (bpf_<program>_run_*). Off by default: while on,
    /// the kernel times every run of every BPF program on the machine.
    #[arg(long)]
    pub bpf_stats: bool,

    /// Start a new file of the series when the current one reaches this many
    /// MiB (uncompressed, while recording): run.h5, run.0001.h5, ...; each
    /// finished file is compressed and carries its `messer_series_index`.
    #[arg(long, value_name = "MIB", allow_hyphen_values = true)]
    pub rotate_size: Option<f64>,

    /// With --rotate-size: delete the oldest files of the series while it
    /// takes more than this many MiB.
    #[arg(long, value_name = "MIB", allow_hyphen_values = true)]
    pub retain_size: Option<f64>,

    /// Leave the file uncompressed at the end (it is written uncompressed
    /// while recording, for crash safety, and compressed after a clean end).
    #[arg(long)]
    pub no_compress: bool,

    /// Do not read /proc/<pid>/smaps_rollup (PSS, USS, dirty memory): it walks
    /// each process's page tables, which costs time on huge processes.
    #[arg(long)]
    pub no_pss: bool,

    /// Sample at normal priority instead of SCHED_FIFO (real-time priority
    /// keeps deadlines when every core is busy; it needs root).
    #[arg(long)]
    pub no_realtime: bool,

    /// Serve the latest sample as Prometheus metrics at
    /// http://ADDR:PORT/metrics (a bare PORT listens on 127.0.0.1 only).
    #[arg(long, value_name = "ADDR:PORT")]
    pub prometheus: Option<String>,

    /// Also export each tracked process's CPU and memory, labelled with pid
    /// and comm (one series per process: mind the cardinality).
    #[arg(long, requires = "prometheus")]
    pub prometheus_per_process: bool,

    /// Write samples and process summaries to InfluxDB at this URL (e.g.
    /// http://127.0.0.1:8086), batched in the background.
    #[arg(long, value_name = "URL")]
    pub influx: Option<String>,

    /// InfluxDB 1.x database.
    #[arg(long, value_name = "NAME", requires = "influx")]
    pub influx_db: Option<String>,

    /// InfluxDB 2.x bucket (with --influx-org).
    #[arg(long, value_name = "NAME", requires = "influx")]
    pub influx_bucket: Option<String>,

    /// InfluxDB 2.x organisation.
    #[arg(long, value_name = "NAME", requires = "influx")]
    pub influx_org: Option<String>,

    /// InfluxDB API token (sent as `Authorization: Token ...`); default:
    /// $MESSER_INFLUX_TOKEN, which keeps it out of the process list.
    #[arg(long, value_name = "TOKEN", requires = "influx")]
    pub influx_token: Option<String>,

    /// No status line on the terminal (it is shown only when stderr is one).
    #[arg(short, long)]
    pub quiet: bool,

    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// Measurement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    Auto,
    Ebpf,
    Procfs,
    Both,
}

/// Commands that read recordings.
#[derive(Debug, Subcommand)]
pub enum Action {
    /// Show a recording's metadata, tables, time span and per-column min/mean/max.
    Inspect {
        /// The HDF5 file.
        file: PathBuf,
    },
    /// Write a table of a recording as CSV or JSON.
    Export {
        /// The HDF5 file.
        file: PathBuf,
        #[arg(long, value_enum)]
        format: crate::analysis::export::Format,
        /// The table to write.
        #[arg(long, default_value = "messer_timeseries")]
        table: String,
        /// Where to write [default: standard output].
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Draw recordings as stacked panels over time (CPU, run-queue wait,
    /// memory, IO, system CPU and memory), several files overlaid.
    Plot {
        /// The HDF5 files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The figure: .png, .svg or .html.
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        /// A label per file, in order [default: the file names].
        #[arg(long, value_name = "TEXT")]
        label: Vec<String>,
        /// Add a panel for this column (repeatable).
        #[arg(long, value_name = "NAME")]
        metric: Vec<String>,
        /// Add a panel stacking the CPU of the top thread groups (a
        /// recording made with --threads).
        #[arg(long)]
        threads: bool,
    },
    /// Print shell completions for messer.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print messer's man page (roff).
    Man,
    /// Compare the ebpf and procfs measurements of a `--mode both` recording.
    Compare {
        /// The HDF5 file.
        file: PathBuf,
        #[arg(long, value_enum, default_value_t = crate::analysis::compare::Format::Text)]
        format: crate::analysis::compare::Format,
        /// How many of the most different windows to list per metric.
        #[arg(long, value_name = "N", default_value_t = 3)]
        worst: usize,
    },
}
