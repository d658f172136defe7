//! Parsers for the /proc files the procfs probe reads on its hot path.
//!
//! They take the file's text and never panic: malformed or truncated input is
//! a `ParseError` naming the file kind and what was wrong.

/// A file's content did not have the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {file}: {what}")]
pub struct ParseError {
    pub file: &'static str,
    pub what: String,
}

impl ParseError {
    pub fn new(file: &'static str, what: impl Into<String>) -> Self {
        ParseError { file, what: what.into() }
    }
}

fn err(file: &'static str, what: impl Into<String>) -> ParseError {
    ParseError::new(file, what)
}

/// The fields of `/proc/<pid>/stat` that messer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    /// User time in clock ticks (USER_HZ); for a process, of all its threads
    /// including exited ones.
    pub utime: u64,
    /// System time in clock ticks.
    pub stime: u64,
    /// Start time after boot in clock ticks: with the pid, the identity of a
    /// process (pids are reused, start times of one pid are not).
    pub starttime: u64,
    pub num_threads: u64,
    pub flags: u64,
    /// User and system ticks of reaped children (waited for).
    pub cutime: u64,
    pub cstime: u64,
    /// Virtual memory size in bytes.
    pub vsize: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
    /// CPU the task last ran on (absent in very old kernels).
    pub processor: Option<u32>,
    /// Ticks spent waiting for block IO (delay accounting; absent in old
    /// kernels, 0 when delay accounting is off).
    pub blkio_ticks: Option<u64>,
    /// Page faults that needed no IO (minor) and that did (major); for a
    /// process, of all its threads including exited ones.
    pub minflt: u64,
    pub majflt: u64,
    /// Ticks spent running a virtual CPU (guest mode; absent in old kernels).
    pub guest_ticks: Option<u64>,
}

/// `PF_KTHREAD` in `Stat::flags`: a kernel thread.
pub const PF_KTHREAD: u64 = 0x0020_0000;

/// Parses `/proc/<pid>/stat` (or `/proc/<pid>/task/<tid>/stat`).
pub fn stat(text: &str) -> Result<Stat, ParseError> {
    const F: &str = "stat";
    // comm is in parentheses and may itself contain spaces and parentheses:
    // it ends at the last ')'.
    let open = text.find('(').ok_or_else(|| err(F, "no '('"))?;
    let close = text.rfind(')').ok_or_else(|| err(F, "no ')'"))?;
    if close < open {
        return Err(err(F, "')' before '('"));
    }
    let pid = text[..open].trim().parse().map_err(|_| err(F, "bad pid"))?;
    let comm = text[open + 1..close].to_string();
    // Fields after comm, numbered from 3 (state) as in proc(5).
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| -> Result<&str, ParseError> {
        rest.get(n - 3).copied().ok_or_else(|| err(F, format!("truncated before field {n}")))
    };
    let num = |n: usize| -> Result<u64, ParseError> {
        field(n)?.parse::<u64>().map_err(|_| err(F, format!("field {n} is not a number")))
    };
    let state = field(3)?.chars().next().ok_or_else(|| err(F, "empty state"))?;
    let ppid = field(4)?.parse::<i32>().map_err(|_| err(F, "bad ppid"))?;
    Ok(Stat {
        pid,
        comm,
        state,
        ppid,
        flags: num(9)?,
        utime: num(14)?,
        stime: num(15)?,
        num_threads: num(20)?,
        starttime: num(22)?,
        cutime: num(16)?,
        cstime: num(17)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
        processor: num(39).ok().and_then(|v| u32::try_from(v).ok()),
        blkio_ticks: num(42).ok(),
        minflt: num(10)?,
        majflt: num(12)?,
        guest_ticks: num(43).ok(),
    })
}

/// A thread's `/proc/<pid>/task/<tid>/schedstat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedstat {
    /// On-CPU time (`se.sum_exec_runtime`, ns).
    pub run_ns: u64,
    /// Time spent runnable on a run queue (`sched_info.run_delay`, ns).
    pub run_delay_ns: u64,
    /// Times switched in (`sched_info.pcount`).
    pub pcount: u64,
}

/// Parses `/proc/<pid>/task/<tid>/schedstat`.
pub fn schedstat(text: &str) -> Result<Schedstat, ParseError> {
    const F: &str = "schedstat";
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(run_ns)), Some(Ok(run_delay_ns)), Some(Ok(pcount))) => Ok(Schedstat { run_ns, run_delay_ns, pcount }),
        _ => Err(err(F, "expected three numbers")),
    }
}

/// Parses a space-separated list of ids (`/proc/<pid>/task/<tid>/children`).
pub fn id_list(text: &str) -> Result<Vec<i32>, ParseError> {
    text.split_whitespace().map(|t| t.parse().map_err(|_| err("children", format!("{t:?} is not a pid")))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELF_STAT: &str = "4242 (my (odd) prog) R 1 4242 4242 0 -1 4194560 120 0 0 0 \
        731 52 0 0 20 0 3 0 987654 12345678 321 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn stat_fields_with_parentheses_in_comm() {
        let s = stat(SELF_STAT).unwrap();
        assert_eq!(s.pid, 4242);
        assert_eq!(s.comm, "my (odd) prog");
        assert_eq!(s.state, 'R');
        assert_eq!(s.ppid, 1);
        assert_eq!((s.utime, s.stime), (731, 52));
        assert_eq!(s.num_threads, 3);
        assert_eq!(s.starttime, 987654);
        assert_eq!(s.flags & PF_KTHREAD, 0);
        assert_eq!((s.vsize, s.rss_pages, s.processor, s.blkio_ticks), (12345678, 321, Some(1), Some(0)));
        assert_eq!((s.minflt, s.majflt, s.guest_ticks), (120, 0, Some(0)));
    }

    #[test]
    fn schedstat_has_run_time_and_switch_ins() {
        assert_eq!(schedstat("123456 789 42\n").unwrap(), Schedstat { run_ns: 123456, run_delay_ns: 789, pcount: 42 });
        assert!(schedstat("123456 789\n").is_err());
        assert!(schedstat("a b c").is_err());
    }

    #[test]
    fn truncated_and_garbage_stat_are_errors() {
        assert!(stat("").is_err());
        assert!(stat("12 (x").is_err());
        let cut = &SELF_STAT[..60];
        let e = stat(cut).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        assert!(stat("12 (x) R 1 2 3 4 5 six 7 8 9 10 11 12 13 14 15 16 17 18 19 20").is_err());
    }

    #[test]
    fn schedstat_and_children() {
        assert_eq!(schedstat("123456789 2000 17\n").unwrap().run_ns, 123456789);
        assert!(schedstat("").is_err());
        assert!(schedstat("x 1 2").is_err());
        assert_eq!(id_list("12 13 \n").unwrap(), vec![12, 13]);
        assert_eq!(id_list("").unwrap(), Vec::<i32>::new());
        assert!(id_list("12 x").is_err());
    }
}
