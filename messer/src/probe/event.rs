//! Process events of the tracked tree (`/messer_events`): what happened to
//! which process, and when.

use messer_common::{COMM_LEN, Event, event};

use crate::base::clock;
use crate::base::table::ascii;
use crate::base::table::{Column, Kind, Row, Schema, Value};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A tracked process forked a new process (tracked with it).
    Fork,
    /// A tracked process ran a new program (procfs: its comm changed).
    Exec,
    /// A tracked process ended.
    Exit,
    /// A process matching `--comm` ran its program (ebpf): tracked from then.
    Match,
    /// A target process was found (`--pid`, a launched command, the pid
    /// `--pid-command` printed, a `--comm` match).
    TargetFound,
    /// A target process exited.
    TargetLost,
    /// A target was found again after all targets had been lost.
    TargetRestarted,
    /// The OOM killer chose a tracked process as its victim (ebpf): its
    /// exit, with signal 9, follows.
    OomKill,
    /// A process entered the target cgroup (`--cgroup`) other than by a
    /// fork inside it: moved in, or forked into it from outside.
    Join,
    /// A tracked process was moved out of the target cgroup.
    Leave,
}

impl EventKind {
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Fork => "fork",
            // A match is an exec; `target_found` follows it.
            EventKind::Exec | EventKind::Match => "exec",
            EventKind::Exit => "exit",
            EventKind::TargetFound => "target_found",
            EventKind::TargetLost => "target_lost",
            EventKind::TargetRestarted => "target_restarted",
            EventKind::OomKill => "oom_kill",
            EventKind::Join => "cgroup_join",
            EventKind::Leave => "cgroup_leave",
        }
    }
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcEvent {
    /// Seconds since the epoch when it happened (or was noticed, see README).
    pub unixtime: f64,
    pub kind: EventKind,
    pub pid: i32,
    /// Parent process; 0 if unknown.
    pub ppid: i32,
    pub comm: String,
    /// Exit: the exit code, or minus the signal that ended it; else NaN.
    pub exit_status: f64,
}

/// A wait status (`exit_code << 8 | signal`) as the exit code, or minus the
/// signal that killed the process.
pub fn decode_status(status: u32) -> f64 {
    let sig = status & 0x7f;
    if sig == 0 { f64::from((status >> 8) & 0xff) } else { -f64::from(sig) }
}

/// A NUL-padded kernel comm as text.
pub fn comm_text(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&comm[..end]).into_owned()
}

impl ProcEvent {
    /// An event from the kernel side's ring buffer.
    pub fn from_kernel(e: &Event) -> Option<Self> {
        let kind = match e.kind {
            event::FORK => EventKind::Fork,
            event::EXEC => EventKind::Exec,
            event::EXIT => EventKind::Exit,
            event::MATCH => EventKind::Match,
            event::OOM_KILL => EventKind::OomKill,
            event::JOIN => EventKind::Join,
            event::LEAVE => EventKind::Leave,
            _ => return None,
        };
        Some(ProcEvent {
            unixtime: clock::wall_of(e.time_ns) as f64 / 1e9,
            kind,
            pid: e.pid as i32,
            ppid: e.ppid as i32,
            comm: comm_text(&e.comm),
            exit_status: if kind == EventKind::Exit { decode_status(e.status) } else { f64::NAN },
        })
    }

    /// An event noticed by messer now.
    pub fn now(kind: EventKind, pid: i32, ppid: i32, comm: &str) -> Self {
        let unixtime = clock::realtime_ns() as f64 / 1e9;
        ProcEvent { unixtime, kind, pid, ppid, comm: comm.to_string(), exit_status: f64::NAN }
    }

    pub fn schema() -> Schema {
        Schema::new(vec![
            Column::new("unixtime", Kind::F64),
            Column::new("isotime_local", Kind::Ascii(26)),
            Column::new("kind", Kind::Ascii(16)),
            Column::new("pid", Kind::I64),
            Column::new("ppid", Kind::I64),
            Column::new("comm", Kind::Ascii(16)),
            Column::new("exit_status", Kind::F64),
        ])
    }

    pub fn row(&self) -> Row {
        let ns = if self.unixtime.is_finite() && self.unixtime > 0.0 { (self.unixtime * 1e9) as u64 } else { 0 };
        vec![
            Value::F64(self.unixtime),
            Value::Ascii(clock::isotime_local(ns)),
            Value::Ascii(self.kind.name().to_string()),
            Value::I64(i64::from(self.pid)),
            Value::I64(i64::from(self.ppid)),
            Value::Ascii(ascii(&self.comm, 16)),
            Value::F64(self.exit_status),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decodes_to_code_or_minus_signal() {
        assert_eq!(decode_status(3 << 8), 3.0);
        assert_eq!(decode_status(0), 0.0);
        assert_eq!(decode_status(9), -9.0);
        assert_eq!(decode_status(15 | 0x80), -15.0);
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut c = [0u8; COMM_LEN];
        c[..9].copy_from_slice(b"supertool");
        assert_eq!(comm_text(&c), "supertool");
        assert_eq!(comm_text(&[b'a'; COMM_LEN]), "a".repeat(16));
    }

    #[test]
    fn row_matches_schema() {
        let e = ProcEvent::now(EventKind::TargetLost, 5, 1, "x");
        assert_eq!(e.row().len(), ProcEvent::schema().columns.len());
        assert_eq!(e.row()[2], Value::Ascii("target_lost".into()));
    }
}
