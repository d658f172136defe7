//! The command line turned, once, into a checked configuration: every range
//! held, the target named one way, each part's options in its own type.
//! Nothing after this reads the raw `Cli`.

use std::path::PathBuf;

use super::RecordError;
use crate::cli::{Cli, Mode};
use crate::probe::ebpf::EbpfOptions;
use crate::probe::procfs::figures::CENSUS_NS;
use crate::probe::procfs::process::Reads;
use crate::sink::exporters::ExporterOptions;
use crate::sink::influx::InfluxOptions;
use crate::targets::cgroup::{CgroupDir, unit_cgroup};

/// Shortest interval accepted.
const MIN_INTERVAL_S: f64 = 0.001;
/// Longest interval accepted: one day (longer windows say nothing a day's
/// would not, and the ns arithmetic stays far from u64's end).
const MAX_INTERVAL_S: f64 = 86_400.0;
/// Longest `--duration`: 100 years in ns fits u64 (584 years) with room for
/// the start time added to it.
pub(super) const MAX_DURATION_S: f64 = 3.15e9;
/// Largest `--max-processes`/`--max-threads`: the kernel's PID_MAX_LIMIT
/// (no more tasks can exist), far below what a BPF hash map may hold.
pub(super) const MAX_MAP_ENTRIES: u32 = 4 << 20;
/// Largest `--rotate-size`/`--retain-size` in MiB: an exbibyte.
const MAX_MIB: f64 = 1.0e12;

/// What to record, as the user said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    Pid(i32),
    Launch(Vec<String>),
    PidCommand(String),
    /// The name and the kernel's NUL-padded form of it.
    Comm(String, [u8; messer_common::COMM_LEN]),
    /// A cgroup (`--cgroup`, or `--unit` resolved to its cgroup).
    Cgroup(CgroupDir),
}

impl Spec {
    /// For the log line: "recording <what> ...".
    pub fn what(&self) -> String {
        match self {
            Spec::Pid(p) => format!("pid {p}"),
            Spec::Launch(c) => c.join(" "),
            Spec::PidCommand(c) => format!("the pid `{c}` prints"),
            Spec::Comm(c, _) => format!("every process named {c}"),
            Spec::Cgroup(c) => format!("every process in cgroup {}", c.path.display()),
        }
    }

    /// The exporters' `target` label.
    pub fn label(&self) -> String {
        match self {
            Spec::Pid(p) => p.to_string(),
            Spec::Launch(c) => c.join(" "),
            Spec::PidCommand(c) | Spec::Comm(c, _) => c.clone(),
            Spec::Cgroup(c) => c.path.display().to_string(),
        }
    }
}

/// Where and how the file is written.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    /// `--output`; None: a name made from the target.
    pub path: Option<PathBuf>,
    pub force: bool,
    /// Rotation at this many bytes, keeping at most `retain_bytes`.
    pub rotate_bytes: Option<u64>,
    pub retain_bytes: Option<u64>,
    pub compress: bool,
}

/// A recording, checked.
#[derive(Debug, Clone)]
pub struct RecordConfig {
    pub spec: Spec,
    pub mode: Mode,
    pub interval_ns: u64,
    /// As given, for the file's attributes.
    pub interval_s: f64,
    pub duration_ns: Option<u64>,
    pub output: OutputConfig,
    /// The probes' options (ebpf's `comm` is the spec's).
    pub ebpf: EbpfOptions,
    pub follow_children: bool,
    pub reads: Reads,
    pub exporters: ExporterOptions,
    pub label: String,
    pub realtime: bool,
    pub quiet: bool,
    /// `--threads`.
    pub threads: bool,
}

impl RecordConfig {
    /// Checks the command line; a value out of range is a usage error that
    /// names the option and says what it takes.
    pub fn from_cli(cli: &Cli) -> Result<Self, RecordError> {
        let interval_ns = interval_ns(cli.interval)?;
        let duration_ns = duration_ns(cli.duration)?;
        let max_processes = map_entries("--max-processes", cli.max_processes)?;
        let max_threads = map_entries("--max-threads", cli.max_threads)?;
        if cli.runq_latency && cli.mode == Mode::Procfs {
            return Err(RecordError::Usage(
                "--runq-latency needs ebpf mode (only the kernel side sees each wait; procfs mode has the total and \
                 the mean): drop --mode procfs"
                    .into(),
            ));
        }
        let spec = spec(cli)?;
        let (rotate_bytes, retain_bytes) = sizes(cli)?;
        // Sockets and thread states in every row at the usual intervals,
        // about twice a second at short ones.
        let census_ns = if interval_ns >= CENSUS_NS { 0 } else { CENSUS_NS };
        let reads = Reads { smaps: !cli.no_pss, sockets: true, census_ns };
        let comm = match &spec {
            Spec::Comm(_, b) => Some(*b),
            _ => None,
        };
        let cgroup = match &spec {
            Spec::Cgroup(c) => Some(c.clone()),
            _ => None,
        };
        // A cgroup's members are the targets; children outside it are not.
        let follow_children = !cli.no_children && cgroup.is_none();
        Ok(RecordConfig {
            mode: cli.mode,
            interval_ns,
            interval_s: cli.interval,
            duration_ns,
            output: OutputConfig {
                path: cli.output.clone(),
                force: cli.force,
                rotate_bytes,
                retain_bytes,
                compress: !cli.no_compress,
            },
            ebpf: EbpfOptions {
                max_processes,
                max_threads,
                follow_children,
                count_io: cli.io_syscalls,
                reads,
                comm,
                bpf_stats: cli.bpf_stats,
                cgroup,
                runq_latency: cli.runq_latency,
                threads: cli.threads,
            },
            follow_children,
            reads,
            exporters: ExporterOptions {
                prometheus: cli.prometheus.clone(),
                prometheus_per_process: cli.prometheus_per_process,
                influx: cli.influx.as_ref().map(|url| InfluxOptions {
                    url: url.clone(),
                    database: cli.influx_db.clone(),
                    bucket: cli.influx_bucket.clone(),
                    org: cli.influx_org.clone(),
                    token: cli.influx_token.clone().or_else(|| std::env::var("MESSER_INFLUX_TOKEN").ok()),
                }),
            },
            label: cli.label.clone(),
            realtime: !cli.no_realtime,
            threads: cli.threads,
            quiet: cli.quiet,
            spec,
        })
    }

    /// `--pid-command`'s text, for the file's attributes ("" otherwise).
    pub fn pid_command(&self) -> &str {
        match &self.spec {
            Spec::PidCommand(c) => c,
            _ => "",
        }
    }

    /// `--comm`'s name, if that is the target.
    pub fn comm(&self) -> Option<&str> {
        match &self.spec {
            Spec::Comm(c, _) => Some(c),
            _ => None,
        }
    }

    /// `--cgroup`'s (or `--unit`'s) cgroup, if that is the target.
    pub fn cgroup(&self) -> Option<&CgroupDir> {
        match &self.spec {
            Spec::Cgroup(c) => Some(c),
            _ => None,
        }
    }

    /// The launched command, if that is the target.
    pub fn command(&self) -> Option<&[String]> {
        match &self.spec {
            Spec::Launch(c) => Some(c),
            _ => None,
        }
    }
}

/// `value` seconds as ns if it lies in `[min, max]`, else the usage error
/// naming `option` and its range.
fn seconds_ns(option: &str, value: f64, min: f64, max: f64, min_open: bool) -> Result<u64, RecordError> {
    let low_ok = if min_open { value > min } else { value >= min };
    if value.is_finite() && low_ok && value <= max {
        return Ok((value * 1e9).round() as u64);
    }
    let low = if min_open { format!("more than {min}") } else { format!("at least {min}") };
    Err(RecordError::Usage(format!("{option} must be a number of seconds, {low} and at most {max}; got {value}")))
}

pub(super) fn interval_ns(interval: f64) -> Result<u64, RecordError> {
    seconds_ns("--interval", interval, MIN_INTERVAL_S, MAX_INTERVAL_S, false)
}

pub(super) fn duration_ns(d: Option<f64>) -> Result<Option<u64>, RecordError> {
    d.map(|s| seconds_ns("--duration", s, 0.0, MAX_DURATION_S, true)).transpose()
}

pub(super) fn map_entries(option: &str, n: u32) -> Result<u32, RecordError> {
    if (1..=MAX_MAP_ENTRIES).contains(&n) {
        Ok(n)
    } else {
        Err(RecordError::Usage(format!(
            "{option} must be from 1 to {MAX_MAP_ENTRIES} (the kernel's PID_MAX_LIMIT); got {n}"
        )))
    }
}

/// `--comm` as the kernel's NUL-padded comm.
pub(super) fn comm_bytes(name: &str) -> Result<[u8; messer_common::COMM_LEN], RecordError> {
    let max = messer_common::COMM_LEN - 1;
    if name.is_empty() || name.len() > max || name.contains(['\0', '/']) {
        return Err(RecordError::Usage(format!(
            "--comm {name:?}: the kernel keeps at most {max} bytes of a program's name (see `ps -o comm`); \
             pass the name as ps shows it"
        )));
    }
    let mut b = [0; messer_common::COMM_LEN];
    b[..name.len()].copy_from_slice(name.as_bytes());
    Ok(b)
}

/// `--rotate-size`/`--retain-size` in bytes, checked.
fn sizes(cli: &Cli) -> Result<(Option<u64>, Option<u64>), RecordError> {
    let mib = |v: f64, what: &str| {
        if v.is_finite() && (0.01..=MAX_MIB).contains(&v) {
            Ok((v * 1048576.0) as u64)
        } else {
            Err(RecordError::Usage(format!("{what} must be a number of MiB from 0.01 to {MAX_MIB:e}; got {v}")))
        }
    };
    let rotate = cli.rotate_size.map(|v| mib(v, "--rotate-size")).transpose()?;
    let retain = cli.retain_size.map(|v| mib(v, "--retain-size")).transpose()?;
    match (rotate, retain) {
        (None, Some(_)) => Err(RecordError::Usage("--retain-size needs --rotate-size".into())),
        (Some(a), Some(b)) if b < a => Err(RecordError::Usage(format!(
            "--retain-size ({} MiB) must be at least --rotate-size ({} MiB)",
            cli.retain_size.unwrap_or_default(),
            cli.rotate_size.unwrap_or_default()
        ))),
        r => Ok(r),
    }
}

/// The one target the command line names.
fn spec(cli: &Cli) -> Result<Spec, RecordError> {
    let others = cli.pid.is_some() || cli.pid_command.is_some() || cli.comm.is_some() || !cli.command.is_empty();
    match (&cli.cgroup, &cli.unit) {
        (Some(_), Some(_)) => return Err(RecordError::Usage("give --cgroup or --unit, not both".into())),
        (Some(_), None) | (None, Some(_)) if others => {
            return Err(RecordError::Usage(
                "give one target: --pid, --pid-command, --comm, --cgroup, --unit or a command after `--`".into(),
            ));
        }
        (Some(path), None) => return CgroupDir::resolve_here(path).map(Spec::Cgroup).map_err(RecordError::Usage),
        (None, Some(unit)) => {
            let rel = unit_cgroup(unit).map_err(RecordError::Usage)?;
            return CgroupDir::resolve_here(&rel).map(Spec::Cgroup).map_err(RecordError::Usage);
        }
        (None, None) => {}
    }
    match (cli.pid, &cli.pid_command, &cli.comm, cli.command.is_empty()) {
        (Some(pid), None, None, true) => Ok(Spec::Pid(pid)),
        (None, Some(c), None, true) if !c.trim().is_empty() => Ok(Spec::PidCommand(c.clone())),
        (None, Some(_), None, true) => Err(RecordError::Usage("--pid-command is empty; give a shell command".into())),
        (None, None, Some(name), true) => Ok(Spec::Comm(name.clone(), comm_bytes(name)?)),
        (None, None, None, false) => Ok(Spec::Launch(cli.command.clone())),
        (None, None, None, true) => Err(RecordError::Usage(
            "say what to record: --pid PID, --pid-command CMD, --comm NAME, --cgroup PATH, or a command after `--` \
             (e.g. `messer -- sleep 1`)"
                .into(),
        )),
        _ => Err(RecordError::Usage("give one target: --pid, --pid-command, --comm or a command after `--`".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_checked() {
        assert_eq!(interval_ns(0.5).unwrap(), 500_000_000);
        assert_eq!(interval_ns(0.001).unwrap(), 1_000_000);
        assert_eq!(interval_ns(86_400.0).unwrap(), 86_400_000_000_000);
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0009, 86_400.1, 1e308] {
            assert!(matches!(interval_ns(bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn durations_and_map_sizes_are_checked() {
        assert_eq!(duration_ns(Some(1.5)).unwrap(), Some(1_500_000_000));
        assert_eq!(duration_ns(None).unwrap(), None);
        let most = duration_ns(Some(MAX_DURATION_S)).unwrap().unwrap();
        assert!(most.checked_add(u64::from(u32::MAX) * 1_000_000_000).is_some());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e308, 4.0e9] {
            assert!(matches!(duration_ns(Some(bad)), Err(RecordError::Usage(_))), "{bad}");
        }
        assert!(map_entries("--max-threads", 1).is_ok());
        assert!(map_entries("--max-threads", MAX_MAP_ENTRIES).is_ok());
        for bad in [0, MAX_MAP_ENTRIES + 1, u32::MAX] {
            assert!(matches!(map_entries("--max-threads", bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn comm_fits_the_kernel() {
        assert_eq!(&comm_bytes("supertool").unwrap()[..10], b"supertool\0");
        assert!(comm_bytes(&"x".repeat(15)).is_ok());
        for bad in ["", "sixteen_chars_xx", "a/b"] {
            assert!(matches!(comm_bytes(bad), Err(RecordError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_command_line_becomes_a_checked_configuration() {
        use clap::Parser as _;
        let cli = Cli::parse_from(["messer", "--comm", "postgres", "--interval", "0.25", "--no-children"]);
        let c = RecordConfig::from_cli(&cli).unwrap();
        assert_eq!(c.comm(), Some("postgres"));
        assert_eq!(c.interval_ns, 250_000_000);
        assert!(!c.follow_children && !c.ebpf.follow_children);
        assert_eq!(c.ebpf.comm.map(|b| b[..8] == *b"postgres"), Some(true));
        // Two targets: refused by clap or by the configuration.
        if let Ok(cli) = Cli::try_parse_from(["messer", "--pid", "1", "--comm", "x"]) {
            assert!(matches!(RecordConfig::from_cli(&cli), Err(RecordError::Usage(_))));
        }
        let cli = Cli::parse_from(["messer", "--pid", "1", "--interval", "0"]);
        assert!(matches!(RecordConfig::from_cli(&cli), Err(RecordError::Usage(_))));
    }
}
