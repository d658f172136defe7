//! What /proc says about one process beyond CPU time: memory, threads, file
//! descriptors, IO counters, reaped children, block-IO delay.

use super::kv;
use super::parse::Stat;
use super::root::{ProcRoot, ReadError};

/// One process's /proc figures; None where the file could not be read
/// (typically permission) or lacks the field on this kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessFigures {
    pub rss_bytes: u64,
    pub vms_bytes: u64,
    pub num_threads: u64,
    pub rss_peak_bytes: Option<u64>,
    pub swap_bytes: Option<u64>,
    /// From smaps_rollup: proportional set size, unique set size
    /// (private clean + private dirty), dirty (private + shared dirty).
    pub pss_bytes: Option<u64>,
    pub uss_bytes: Option<u64>,
    pub dirty_bytes: Option<u64>,
    pub num_fds: Option<u64>,
    /// Socket inodes among the open file descriptors.
    pub socket_inodes: Option<Vec<u64>>,
    /// The soft limit on open descriptors (RLIMIT_NOFILE); None if unknown,
    /// u64::MAX for unlimited.
    pub fd_limit: Option<u64>,
    /// /proc/<pid>/io: rchar, wchar, syscr, syscw, read_bytes, write_bytes,
    /// cancelled_write_bytes.
    pub io: Option<[u64; 7]>,
    pub children_user_ticks: u64,
    pub children_system_ticks: u64,
    pub blkio_ticks: Option<u64>,
}

/// The /proc/<pid>/io fields, in `ProcessFigures::io` order.
pub const IO_FIELDS: [&str; 7] =
    ["rchar", "wchar", "syscr", "syscw", "read_bytes", "write_bytes", "cancelled_write_bytes"];

/// Process `pid`'s soft RLIMIT_NOFILE: prlimit(2) (one syscall; root may
/// ask of any process), else the "Max open files" line of
/// /proc/<pid>/limits (readable by anyone). u64::MAX for unlimited.
pub fn fd_limit(proc: &ProcRoot, pid: i32) -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit with a null new limit only reads into `lim`.
    if proc.is_live() && unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut lim) } == 0 {
        return Some(if lim.rlim_cur == libc::RLIM_INFINITY { u64::MAX } else { lim.rlim_cur });
    }
    let text = proc.read(format!("{pid}/limits")).ok()?;
    parse_fd_limit(&text)
}

/// The soft limit of "Max open files" in a /proc/<pid>/limits text.
pub fn parse_fd_limit(text: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix("Max open files"))?;
    match rest.split_whitespace().next()? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// A process's VmHWM and VmSwap (bytes) as the kernel side read them from
/// its mm, by the rule /proc/<pid>/status prints them with, and its soft
/// limit on open descriptors where it read that (u64::MAX: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelMemory {
    pub peak_bytes: u64,
    pub swap_bytes: u64,
    pub fd_limit: Option<u64>,
}

/// The fields of /proc/<pid>/smaps_rollup used.
const SMAPS_FIELDS: [&str; 4] = ["Pss", "Private_Clean", "Private_Dirty", "Shared_Dirty"];

/// Which optional (costly) files to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reads {
    /// smaps_rollup (PSS, USS, dirty): walks the page tables of the process.
    pub smaps: bool,
    /// Classify file descriptors (one readlink each) to find sockets.
    pub sockets: bool,
    /// Sockets and thread states are counted at most this often (ns; see
    /// `figures::CENSUS_NS`), 0: every read.
    pub census_ns: u64,
}

/// A file that could not be read is an unknown value (permission, or not
/// on this kernel), unless the process itself is gone.
fn optional<T>(proc: &ProcRoot, pid: i32, r: Result<T, ReadError>) -> Result<Option<T>, ReadError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e @ ReadError::Gone(_)) if !proc.path().join(pid.to_string()).exists() => Err(e),
        Err(_) => Ok(None),
    }
}

fn kv_file<const N: usize>(
    proc: &ProcRoot,
    pid: i32,
    name: &'static str,
    keys: &[&str; N],
) -> Result<[Option<u64>; N], ReadError> {
    let rel = format!("{pid}/{name}");
    let text = proc.read(&rel)?;
    kv::fields(name, &text, keys).map_err(|source| ReadError::Parse { path: proc.path().join(rel), source })
}

/// Counts the entries of /proc/<pid>/fd and, if `sockets`, collects socket
/// inodes (None otherwise).
fn fds(proc: &ProcRoot, pid: i32, sockets: bool) -> Result<(u64, Option<Vec<u64>>), ReadError> {
    let dir = proc.path().join(format!("{pid}/fd"));
    // Since Linux 6.2 the size of /proc/<pid>/fd is the number of open
    // descriptors, counted from the descriptor bitmap: no directory listing
    // (which looks up a dentry per descriptor: 20 % of messer's CPU at 10 ms
    // on a 2000-descriptor process). 0 on older kernels: list them then.
    if !sockets && proc.is_live() {
        let size = proc.kept_fd_count(pid).or_else(|| std::fs::metadata(&dir).ok().map(|m| m.len()));
        if let Some(n) = size.filter(|&n| n > 0) {
            return Ok((n, None));
        }
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Gone(dir.clone()),
        _ => ReadError::Io { path: dir.clone(), source: e },
    })?;
    // Links are read relative to the directory: one path component to look
    // up per descriptor instead of four.
    let dir_fd = if sockets { std::fs::File::open(&dir).ok() } else { None };
    let mut n = 0;
    let mut found = Vec::new();
    for e in entries.flatten() {
        n += 1;
        if let Some(d) = &dir_fd
            && let Some(inode) = socket_inode(d, &e.file_name())
        {
            found.push(inode);
        }
    }
    Ok((n, sockets.then_some(found)))
}

/// The inode of the socket that descriptor link `name` in directory `dir`
/// points to ("socket:[12345]"), if it is a socket.
fn socket_inode(dir: &std::fs::File, name: &std::ffi::OsStr) -> Option<u64> {
    use std::os::fd::AsRawFd as _;
    use std::os::unix::ffi::OsStrExt as _;
    let name = std::ffi::CString::new(name.as_bytes()).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: readlinkat into a local buffer of the given length.
    let n = unsafe { libc::readlinkat(dir.as_raw_fd(), name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let target = buf.get(..usize::try_from(n).ok()?)?;
    std::str::from_utf8(target.strip_prefix(b"socket:[")?.strip_suffix(b"]")?).ok()?.parse().ok()
}

/// /proc/<pid>/io in `IO_FIELDS` order; None if unreadable or incomplete.
pub fn io(proc: &ProcRoot, pid: i32) -> Option<[u64; 7]> {
    io_fields(kv_file(proc, pid, "io", &IO_FIELDS).ok().as_ref())
}

fn io_fields(m: Option<&[Option<u64>; 7]>) -> Option<[u64; 7]> {
    let m = m?;
    let mut v = [0; 7];
    for (slot, f) in v.iter_mut().zip(m) {
        *slot = (*f)?;
    }
    Some(v)
}

/// CPU time the costly reads took (the sampler thread's ns), summed over
/// processes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Spent {
    pub smaps_ns: u64,
    pub sockets_ns: u64,
}

/// Runs `f`, adding the CPU time it took to `*ns`.
fn timed<T>(ns: &mut u64, f: impl FnOnce() -> T) -> T {
    let t0 = crate::base::clock::thread_cpu_ns();
    let out = f();
    *ns += crate::base::clock::thread_cpu_ns().saturating_sub(t0);
    out
}

/// What the kernel side gave for one process instead of /proc's files:
/// its VmHWM, VmSwap and descriptor limit, /proc/<pid>/io's counters
/// (`IO_FIELDS` order) and how many descriptors it has open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kernel {
    pub memory: Option<KernelMemory>,
    pub io: Option<[u64; 7]>,
    pub fds: Option<u64>,
}

/// Reads process `pid` whose stat is `stat`; adds the time of the costly
/// reads to `spent`.
pub fn read(
    proc: &ProcRoot,
    stat: &Stat,
    page_size: u64,
    reads: Reads,
    given: Kernel,
    spent: &mut Spent,
) -> Result<ProcessFigures, ReadError> {
    let kernel = given.memory;
    let pid = stat.pid;
    // The kernel side's figures where it gave them, else status.
    let (peak, swap) = match kernel {
        Some(k) => (Some(k.peak_bytes), Some(k.swap_bytes)),
        None => {
            let status = optional(proc, pid, kv_file(proc, pid, "status", &["VmHWM", "VmSwap"]))?;
            status.map_or((None, None), |[hwm, swap]| (hwm, swap))
        }
    };
    let smaps = if reads.smaps {
        optional(proc, pid, timed(&mut spent.smaps_ns, || kv_file(proc, pid, "smaps_rollup", &SMAPS_FIELDS)))?
    } else {
        None
    };
    let io = match given.io {
        Some(v) => Some(v),
        None => io_fields(optional(proc, pid, kv_file(proc, pid, "io", &IO_FIELDS))?.as_ref()),
    };
    // The descriptors are listed when sockets are classified; counted by
    // the kernel side where it did, else from /proc.
    let fds = match (reads.sockets, given.fds) {
        (true, _) => optional(proc, pid, timed(&mut spent.sockets_ns, || fds(proc, pid, true)))?,
        (false, Some(n)) => Some((n, None)),
        (false, None) => optional(proc, pid, fds(proc, pid, false))?,
    };
    // SMAPS_FIELDS' order.
    let field = |i: usize| smaps.as_ref().and_then(|m| m[i]);
    let sum = |a: usize, b: usize| Some(field(a)? + field(b)?);
    // A process that exited after the tree walk (a zombie not yet reaped)
    // has no memory left: its memory files are empty, and it is left out of
    // the tree's memory sums (adds 0) instead of making them missing.
    let exited = std::cell::OnceCell::new();
    let no_memory = || {
        *exited.get_or_init(|| {
            matches!(stat.state, 'Z' | 'X')
                || proc.stat(pid).map_or(true, |s| s.starttime != stat.starttime || matches!(s.state, 'Z' | 'X'))
        })
    };
    let or_exited = |v: Option<u64>, was_read: bool| v.or_else(|| (was_read && no_memory()).then_some(0));
    Ok(ProcessFigures {
        rss_bytes: stat.rss_pages * page_size,
        vms_bytes: stat.vsize,
        num_threads: stat.num_threads,
        rss_peak_bytes: or_exited(peak, true),
        swap_bytes: or_exited(swap, true),
        pss_bytes: or_exited(field(0), reads.smaps),
        uss_bytes: or_exited(sum(1, 2), reads.smaps),
        dirty_bytes: or_exited(sum(2, 3), reads.smaps),
        num_fds: fds.as_ref().map(|f| f.0),
        socket_inodes: fds.and_then(|f| f.1),
        fd_limit: kernel.and_then(|k| k.fd_limit).or_else(|| fd_limit(proc, pid)),
        io,
        children_user_ticks: stat.cutime,
        children_system_ticks: stat.cstime,
        blkio_ticks: stat.blkio_ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::proc::testutil::FakeProc;

    #[test]
    fn a_process_that_exited_meanwhile_adds_no_memory_instead_of_missing() {
        let p = FakeProc::new();
        p.process(10, 1, "app", &[10]);
        let stat = p.root().stat(10).unwrap();
        // Exited after the walk: a zombie, whose memory files are empty.
        let zombie = std::fs::read_to_string(p.root().path().join("10/stat")).unwrap().replacen(" S ", " Z ", 1);
        p.file("10/stat", &zombie);
        p.file("10/status", "Name:\tapp\nState:\tZ (zombie)\n");
        p.file("10/smaps_rollup", "");
        let f = read(
            &p.root(),
            &stat,
            4096,
            Reads { smaps: true, sockets: false, census_ns: 0 },
            Kernel::default(),
            &mut Spent::default(),
        )
        .unwrap();
        assert_eq!((f.pss_bytes, f.uss_bytes, f.dirty_bytes, f.rss_peak_bytes), (Some(0), Some(0), Some(0), Some(0)));
        // A live process whose smaps_rollup cannot be read stays missing.
        let p = FakeProc::new();
        p.process(11, 1, "app", &[11]);
        p.file("11/smaps_rollup", "");
        let stat = p.root().stat(11).unwrap();
        let f = read(
            &p.root(),
            &stat,
            4096,
            Reads { smaps: true, sockets: false, census_ns: 0 },
            Kernel::default(),
            &mut Spent::default(),
        )
        .unwrap();
        assert_eq!(f.pss_bytes, None);
    }

    #[test]
    fn reads_every_file_of_a_fake_process() {
        let p = FakeProc::new();
        p.process(10, 1, "app", &[10, 11]);
        p.file("10/status", "Name:\tapp\nVmHWM:\t  2048 kB\nVmSwap:\t 4 kB\nThreads:\t2\n");
        p.file(
            "10/smaps_rollup",
            "Rss: 100 kB\nPss: 60 kB\nPrivate_Clean: 8 kB\nPrivate_Dirty: 16 kB\nShared_Dirty: 4 kB\n",
        );
        p.file(
            "10/io",
            "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 6\ncancelled_write_bytes: 0\n",
        );
        let root = p.root();
        let stat = root.stat(10).unwrap();
        let f = read(
            &root,
            &stat,
            4096,
            Reads { smaps: true, sockets: true, census_ns: 0 },
            Kernel::default(),
            &mut Spent::default(),
        )
        .unwrap();
        assert_eq!(f.rss_peak_bytes, Some(2048 * 1024));
        assert_eq!(f.swap_bytes, Some(4096));
        assert_eq!((f.pss_bytes, f.uss_bytes, f.dirty_bytes), (Some(60 * 1024), Some(24 * 1024), Some(20 * 1024)));
        assert_eq!(f.io, Some([1, 2, 3, 4, 5, 6, 0]));
        assert_eq!(f.rss_bytes, stat.rss_pages * 4096);
        assert_eq!(f.num_fds, None, "no fd directory in the fake");
        let f = read(
            &root,
            &stat,
            4096,
            Reads { smaps: false, sockets: true, census_ns: 0 },
            Kernel::default(),
            &mut Spent::default(),
        )
        .unwrap();
        assert_eq!(f.pss_bytes, None);
    }

    #[test]
    fn malformed_files_are_missing_values_not_errors() {
        let p = FakeProc::new();
        p.process(10, 1, "app", &[10]);
        p.file("10/io", "rchar: x\n");
        p.file("10/status", "garbage without colons");
        let root = p.root();
        let f = read(
            &root,
            &root.stat(10).unwrap(),
            4096,
            Reads { smaps: true, sockets: true, census_ns: 0 },
            Kernel::default(),
            &mut Spent::default(),
        )
        .unwrap();
        assert_eq!((f.io, f.rss_peak_bytes), (None, None));
    }
}
