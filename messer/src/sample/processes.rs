//! Rows of `/messer_processes` (each tracked process in each window) and of
//! `/messer_process_info` (each process ever seen, once).

use std::collections::HashMap;

use crate::base::hash::FastMap;

use super::cpu_percent;
use crate::base::table::{Column, Kind, Row, Schema, Value, ascii};
use crate::probe::ProcessWindow;
use crate::probe::procfs::ProcRoot;

/// Longest command line and executable path kept (longer ones are cut).
pub const CMDLINE_LEN: usize = 1024;
pub const EXE_LEN: usize = 256;

pub fn schema() -> Schema {
    let f = |n: &str| Column::new(n, Kind::F64);
    Schema::new(vec![
        f("unixtime"),
        f("monotime"),
        Column::new("pid", Kind::I64),
        Column::new("ppid", Kind::I64),
        f("start_unixtime"),
        Column::new("comm", Kind::Ascii(16)),
        f("cpu_util_percent_total"),
        f("cpu_util_percent_user"),
        f("cpu_util_percent_system"),
        f("mem_rss"),
        f("num_threads"),
        f("read_throughput_mibps"),
        f("write_throughput_mibps"),
        f("page_faults_minor_rate_hz"),
        f("page_faults_major_rate_hz"),
        f("num_threads_running"),
        f("num_threads_sleeping"),
        f("num_threads_disk_sleep"),
        f("num_threads_stopped"),
        f("num_threads_zombie"),
        f("num_fds"),
        f("fd_limit"),
        f("fd_used_percent"),
        f("io_cancelled_write_throughput_mibps"),
        f("cpu_util_percent_guest"),
    ])
}

/// The `/messer_processes` row of one process in a window.
pub fn row(p: &ProcessWindow, unixtime: f64, monotime: f64, window_ns: u64) -> Row {
    let (total, user, system) = cpu_percent(&p.cpu, window_ns);
    let per_second = |n: f64| {
        if window_ns == 0 { f64::NAN } else { n / (window_ns as f64 / 1e9) }
    };
    let mibps = |b: f64| per_second(b / 1048576.0);
    let mut row = vec![
        Value::F64(unixtime),
        Value::F64(monotime),
        Value::I64(i64::from(p.pid)),
        Value::I64(i64::from(p.ppid)),
        Value::F64(p.start_unixtime),
        Value::Ascii(ascii(&p.comm, 16)),
        Value::F64(total),
        Value::F64(user),
        Value::F64(system),
        Value::F64(p.rss_bytes),
        Value::F64(p.num_threads),
        Value::F64(mibps(p.read_bytes)),
        Value::F64(mibps(p.write_bytes)),
        Value::F64(per_second(p.faults_minor)),
        Value::F64(per_second(p.faults_major)),
    ];
    let x = &p.extras;
    row.extend(x.thread_states.map(Value::F64));
    row.extend([
        Value::F64(x.num_fds),
        Value::F64(x.fd_limit),
        Value::F64(x.num_fds / x.fd_limit * 100.0),
        Value::F64(mibps(x.cancelled_write_bytes)),
        Value::F64(per_second(x.guest_ns / 1e9) * 100.0),
    ]);
    row
}

pub fn info_schema() -> Schema {
    let f = |n: &str| Column::new(n, Kind::F64);
    Schema::new(vec![
        Column::new("pid", Kind::I64),
        Column::new("ppid", Kind::I64),
        f("start_unixtime"),
        Column::new("comm", Kind::Ascii(16)),
        Column::new("exe", Kind::Ascii(EXE_LEN)),
        Column::new("cmdline", Kind::Ascii(CMDLINE_LEN)),
        f("euid"),
        Column::new("user", Kind::Ascii(32)),
        f("first_seen_unixtime"),
        f("last_seen_unixtime"),
        f("cpu_seconds"),
        f("cpu_credits"),
        f("cpu_avg_percent"),
        f("duration_seconds"),
        f("exit_status"),
    ])
}

/// CPU seconds in one credit: one vCPU at 100 % for one minute.
pub const CREDIT_SECONDS: f64 = 60.0;

/// What is known about one process.
#[derive(Debug, Clone)]
struct Info {
    pid: i32,
    ppid: i32,
    start_unixtime: f64,
    comm: String,
    exe: String,
    cmdline: String,
    euid: Option<u32>,
    first_seen: f64,
    last_seen: f64,
    /// CPU recorded for it (ns, over the windows it was seen in).
    cpu_ns: f64,
    /// Since when it was recorded: its start, or the recording's start.
    since: f64,
    /// The last reading it was seen in (see `Registry::readings`).
    reading: u64,
}

/// The user name of `uid` from /etc/passwd (empty if none).
fn user_name(uid: u32) -> String {
    let uid = uid.to_string();
    crate::targets::launch::passwd_entry(|f| f.get(2) == Some(&uid.as_str())).map(|f| f[0].clone()).unwrap_or_default()
}

/// Effective uid: the second field of `Uid:` in /proc/<pid>/status.
pub fn parse_euid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Every process seen, by (pid, start time); emits a row when one is gone.
pub struct Registry {
    proc: ProcRoot,
    /// When the recording started (unix seconds).
    started: f64,
    seen: FastMap<(i32, u64), Info>,
    /// The readings observed so far: a process seen in the last one has it
    /// as its `reading`.
    readings: u64,
    /// A launched command's pid: its row waits for its exit status.
    hold: Option<i32>,
    held: Vec<Info>,
    /// Exit statuses from exit events (a wait status decoded: the exit code,
    /// or minus the signal), by pid, until the process's row is written.
    statuses: HashMap<i32, f64>,
}

impl Registry {
    pub fn new(proc: ProcRoot, started: f64) -> Self {
        Self {
            proc,
            started,
            seen: FastMap::default(),
            readings: 0,
            hold: None,
            held: Vec::new(),
            statuses: HashMap::new(),
        }
    }

    /// Notes process `pid` now, before any sample shows it (a launched
    /// command right after its exec, which may end within one interval), and
    /// keeps its row until `finish` gives its exit status. `argv` is what
    /// messer ran: the command line when /proc no longer shows one (a
    /// command that has already exited is a zombie with an empty cmdline).
    pub fn note(&mut self, pid: i32, unixtime: f64, argv: &[String]) {
        self.hold = Some(pid);
        let host = crate::probe::procfs::host::Host::new(&self.proc);
        if let Ok(stat) = self.proc.stat(pid) {
            let w = host.window(&stat, crate::probe::CpuWindow::default(), None, None);
            let (key, mut info) = self.seen_now(&w, unixtime);
            if info.cmdline.is_empty() {
                info.cmdline = argv.join(" ");
            }
            self.seen.insert(key, info);
        }
    }

    /// Process `p` seen at `unixtime`: what is known of it (taken out of
    /// `seen`), or, the first time, what /proc says now.
    fn seen_now(&mut self, p: &ProcessWindow, unixtime: f64) -> ((i32, u64), Info) {
        let key = (p.pid, p.start_unixtime.to_bits());
        let info = match self.seen.remove(&key) {
            // A new name means a new program (an exec): its exe and command
            // line are read again, so that the row names what ran last.
            Some(i) if i.comm != p.comm => {
                let fresh = self.info(p, unixtime);
                let or_old = |new: String, old: String| if new.is_empty() { old } else { new };
                Info {
                    exe: or_old(fresh.exe, i.exe),
                    cmdline: or_old(fresh.cmdline, i.cmdline),
                    euid: fresh.euid.or(i.euid),
                    ..i
                }
            }
            Some(i) => i,
            None => self.info(p, unixtime),
        };
        let cpu_ns = info.cpu_ns + p.cpu.on_cpu_ns as f64;
        (key, Info { last_seen: unixtime, comm: p.comm.clone(), cpu_ns, reading: self.readings, ..info })
    }

    fn info(&self, p: &ProcessWindow, unixtime: f64) -> Info {
        let exe = std::fs::read_link(self.proc.path().join(format!("{}/exe", p.pid)))
            .map(|x| x.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cmdline = std::fs::read(self.proc.path().join(format!("{}/cmdline", p.pid)))
            .map(|b| String::from_utf8_lossy(&b).trim_end_matches('\0').replace('\0', " "))
            .unwrap_or_default();
        let euid = self.proc.read(format!("{}/status", p.pid)).ok().and_then(|s| parse_euid(&s));
        Info {
            pid: p.pid,
            ppid: p.ppid,
            start_unixtime: p.start_unixtime,
            comm: p.comm.clone(),
            exe,
            cmdline,
            euid,
            first_seen: unixtime,
            last_seen: unixtime,
            cpu_ns: 0.0,
            since: p.start_unixtime.max(self.started),
            reading: self.readings,
        }
    }

    /// Notes the exit statuses the events carry (the kernel side's exit
    /// events have them); a process's row then gives its status.
    pub fn note_exits(&mut self, events: &[crate::probe::ProcEvent]) {
        for e in events {
            if e.kind == crate::probe::EventKind::Exit && !e.exit_status.is_nan() {
                self.statuses.insert(e.pid, e.exit_status);
            }
        }
    }

    /// The row of `i`, with its exit status if one is known.
    fn row_of(&mut self, i: &Info) -> Row {
        let mut row = info_row(i);
        if let (Some(s), Some(last)) = (self.statuses.remove(&i.pid), row.last_mut()) {
            *last = Value::F64(s);
        }
        row
    }

    /// Records the processes of one reading at `unixtime`; returns the rows
    /// of processes seen before but not any more.
    pub fn observe(&mut self, processes: &[ProcessWindow], unixtime: f64) -> Vec<Row> {
        self.readings += 1;
        let reading = self.readings;
        for p in processes {
            let key = (p.pid, p.start_unixtime.to_bits());
            // Known under the same name: updated in place (the common case,
            // every process at every sample).
            if let Some(i) = self.seen.get_mut(&key)
                && i.comm == p.comm
            {
                i.last_seen = unixtime;
                i.cpu_ns += p.cpu.on_cpu_ns as f64;
                i.reading = reading;
                continue;
            }
            let (key, info) = self.seen_now(p, unixtime);
            self.seen.insert(key, info);
        }
        let gone = self.seen.extract_if(|_, i| i.reading != reading).map(|(_, i)| i);
        let (held, rows): (Vec<Info>, Vec<Info>) = gone.partition(|i| Some(i.pid) == self.hold);
        self.held.extend(held);
        rows.iter().map(|i| self.row_of(i)).collect()
    }

    /// Rows of every process still known (at the end of a recording);
    /// `exit` is the status of process `pid` if messer learned it.
    pub fn finish(&mut self, exit: Option<(i32, f64)>) -> Vec<Row> {
        if let Some((pid, s)) = exit {
            self.statuses.insert(pid, s);
        }
        let infos: Vec<Info> =
            std::mem::take(&mut self.seen).into_values().chain(std::mem::take(&mut self.held)).collect();
        infos.iter().map(|i| self.row_of(i)).collect()
    }
}

fn info_row(i: &Info) -> Row {
    vec![
        Value::I64(i64::from(i.pid)),
        Value::I64(i64::from(i.ppid)),
        Value::F64(i.start_unixtime),
        Value::Ascii(ascii(&i.comm, 16)),
        Value::Ascii(ascii(&i.exe, EXE_LEN)),
        Value::Ascii(ascii(&i.cmdline, CMDLINE_LEN)),
        Value::F64(i.euid.map_or(f64::NAN, f64::from)),
        Value::Ascii(ascii(&i.euid.map(user_name).unwrap_or_default(), 32)),
        Value::F64(i.first_seen),
        Value::F64(i.last_seen),
        Value::F64(i.cpu_ns / 1e9),
        Value::F64(i.cpu_ns / 1e9 / CREDIT_SECONDS),
        Value::F64(if i.last_seen > i.since { i.cpu_ns / 1e9 / (i.last_seen - i.since) * 100.0 } else { f64::NAN }),
        Value::F64(i.last_seen - i.since),
        // From an exit event, or a launched command's wait (see `row_of`).
        Value::F64(f64::NAN),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_fit_their_columns() {
        assert_eq!(ascii("héllo", 3), "h?l");
        assert_eq!(ascii("a\0b", 8), "a?b");
    }

    #[test]
    fn effective_uid_is_the_second_field() {
        assert_eq!(parse_euid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        assert_eq!(parse_euid("Name:\tx\n"), None);
    }

    #[test]
    fn rows_match_schemas_and_gone_processes_are_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::new(ProcRoot::new(dir.path()), 0.0);
        let p = ProcessWindow { pid: 5, comm: "x".into(), start_unixtime: 100.0, ..Default::default() };
        assert!(r.observe(std::slice::from_ref(&p), 1.0).is_empty());
        assert!(r.observe(std::slice::from_ref(&p), 2.0).is_empty());
        let gone = r.observe(&[], 3.0);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].len(), info_schema().columns.len());
        assert_eq!(gone[0][9], Value::F64(2.0), "last seen");
        assert_eq!(row(&p, 1.0, 1.0, 1).len(), schema().columns.len());
        assert!(r.observe(std::slice::from_ref(&p), 4.0).is_empty());
        let end = r.finish(Some((5, 3.0)));
        assert_eq!(end[0][14], Value::F64(3.0), "exit status of a launched command");
    }
}
