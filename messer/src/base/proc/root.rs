//! Reading files below a proc root (`/proc`, or a fake tree in tests).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::parse::{self, ParseError, Stat};

/// Why a /proc read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The process or thread no longer exists (it exited while we looked).
    #[error("{0} is gone")]
    Gone(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: ParseError },
}

impl ReadError {
    /// True when the entity simply went away.
    pub fn is_gone(&self) -> bool {
        matches!(self, ReadError::Gone(_))
    }
}

/// Reads all of `f` from offset 0 into `buf` (grown as needed, at least a
/// page); returns the length. From offset 0, a proc file's content is made
/// anew. `one_record`: `f` is a seq_file of one record (`single_open`: a
/// process's stat, status, io, schedstat), which the kernel makes whole
/// before it copies any of it, so a read shorter than asked for is all of
/// it and the read that would return 0 is spared (a system call per file
/// per process per sample). A file of many records can read short before
/// its end (a record that does not fit the kernel's buffer waits for the
/// next read), so the others are read until a read returns 0.
fn read_from_start(f: &std::fs::File, buf: &mut Vec<u8>, one_record: bool) -> io::Result<usize> {
    use std::os::unix::fs::FileExt as _;
    if buf.len() < 4096 {
        buf.resize(4096, 0);
    }
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        let room = buf.len() - len;
        match f.read_at(&mut buf[len..], len as u64) {
            Ok(0) => return Ok(len),
            Ok(n) if one_record && n < room => return Ok(len + n),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Files read at every sample (the system-wide ones): kept open and read
/// again from offset 0, which regenerates a proc file's content and spares
/// the path lookup, open and close (half the cost of a small /proc file).
#[derive(Debug, Default)]
pub struct KeptFiles {
    files: std::collections::HashMap<String, std::fs::File>,
    buf: Vec<u8>,
}

impl KeptFiles {
    /// Reads file `rel` below `proc` as text.
    pub fn read(&mut self, proc: &ProcRoot, rel: &str) -> Result<String, ReadError> {
        if let Some(text) = proc.shared_text(Path::new(rel)) {
            return Ok(text);
        }
        let text = self.read_kept(proc, rel)?;
        proc.share(Path::new(rel), &text);
        Ok(text)
    }

    fn read_kept(&mut self, proc: &ProcRoot, rel: &str) -> Result<String, ReadError> {
        let path = || proc.root.join(rel);
        if !self.files.contains_key(rel) {
            let f = std::fs::File::open(path()).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => ReadError::Gone(path()),
                _ => ReadError::Io { path: path(), source: e },
            })?;
            self.files.insert(rel.to_string(), f);
        }
        let Some(f) = self.files.get(rel) else { return proc.read_file(Path::new(rel)) };
        let len = match read_from_start(f, &mut self.buf, false) {
            Ok(n) => n,
            Err(source) => {
                self.files.remove(rel);
                return Err(ReadError::Io { path: path(), source });
            }
        };
        String::from_utf8(self.buf[..len].to_vec())
            .map_err(|e| ReadError::Io { path: path(), source: io::Error::new(io::ErrorKind::InvalidData, e) })
    }
}

/// A proc file system mounted at some directory.
#[derive(Debug, Clone)]
pub struct ProcRoot {
    root: PathBuf,
    buf_capacity: usize,
    /// With `--mode both`: what was read during the current tick, shared
    /// by every clone (both probes read each file once per tick).
    tick: Option<std::sync::Arc<std::sync::Mutex<TickReads>>>,
    /// Per-process files kept open between reads (see `keeping_files`).
    kept: Option<std::sync::Arc<std::sync::Mutex<ProcessFiles>>>,
}

/// The per-process and per-thread files read at every sample (`stat`,
/// `status`, `io`, `schedstat`), kept open and read again from offset 0:
/// no path walk, open and close per file (a quarter of the cost of reading
/// a process's figures). An open file belongs to the process it was opened
/// for: once that process is gone its reads fail (ESRCH), never show
/// another process that reuses the pid; the file is then closed and the
/// path opened afresh. Files not read for a whole tick are closed.
#[derive(Debug)]
struct ProcessFiles {
    files: crate::base::hash::FastMap<PathBuf, (std::fs::File, u64)>,
    tick: u64,
    /// At most this many files are kept open; beyond, a file is opened per read.
    cap: usize,
    buf: Vec<u8>,
}

/// The names of the per-process files kept open.
const KEPT_NAMES: [&str; 4] = ["stat", "status", "io", "schedstat"];

impl ProcessFiles {
    fn keeps(rel: &Path) -> bool {
        let mut c = rel.components();
        let first_is_pid = c.next().and_then(|c| c.as_os_str().to_str()).is_some_and(|s| s.parse::<i32>().is_ok());
        first_is_pid && rel.file_name().and_then(|n| n.to_str()).is_some_and(|n| KEPT_NAMES.contains(&n))
    }

    /// The text of `rel` through its kept file; None when there is none
    /// (or no room for one) or it failed (then it is closed).
    fn read(&mut self, root: &Path, rel: &Path) -> Option<String> {
        if !self.files.contains_key(rel) {
            if self.files.len() >= self.cap {
                return None;
            }
            let f = std::fs::File::open(root.join(rel)).ok()?;
            self.files.insert(rel.to_path_buf(), (f, self.tick));
        }
        let (f, used) = self.files.get_mut(rel)?;
        *used = self.tick;
        let Ok(len) = read_from_start(f, &mut self.buf, true) else {
            self.files.remove(rel);
            return None;
        };
        // A process gone before its first read after open reads empty on
        // some kernels: read the path instead, which says it is gone.
        if len == 0 {
            self.files.remove(rel);
            return None;
        }
        std::str::from_utf8(&self.buf[..len]).ok().map(str::to_string)
    }

    /// The size of `<pid>/fd` (the number of open descriptors, from Linux
    /// 6.2) through a kept `O_PATH` descriptor of that directory: an fstat,
    /// no path walk. None where there is none (or no room for one) or the
    /// process is gone (then it is closed).
    fn fd_count(&mut self, root: &Path, pid: i32) -> Option<u64> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let rel = PathBuf::from(format!("{pid}/fd"));
        if !self.files.contains_key(&rel) {
            if self.files.len() >= self.cap {
                return None;
            }
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                .open(root.join(&rel))
                .ok()?;
            self.files.insert(rel.clone(), (f, self.tick));
        }
        let (f, used) = self.files.get_mut(&rel)?;
        *used = self.tick;
        match f.metadata() {
            Ok(m) => Some(m.len()),
            Err(_) => {
                self.files.remove(&rel);
                None
            }
        }
    }

    fn new_tick(&mut self) {
        let tick = self.tick;
        self.files.retain(|_, (_, used)| *used >= tick);
        self.tick += 1;
    }
}

/// messer's soft RLIMIT_NOFILE as it started: restored in the commands it
/// runs (`restore_fd_limit`), raised for its kept files (`raise_fd_limit`).
static STARTED_WITH: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();

/// Raises messer's soft limit on open descriptors to its hard limit (at
/// most 65536), for the per-process files kept open; returns the new soft
/// limit. Commands started after this get the limit messer started with
/// (`restore_fd_limit`): a target never sees messer's.
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit into a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1024;
    }
    let started = *STARTED_WITH.get_or_init(|| lim);
    let want = libc::rlimit { rlim_cur: lim.rlim_max.min(65536).max(started.rlim_cur), rlim_max: lim.rlim_max };
    // SAFETY: setrlimit from a local.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 { want.rlim_cur } else { lim.rlim_cur }
}

/// Sets the soft limit on open descriptors back to what messer started
/// with, if it raised it. Async-signal-safe (for a forked child before exec).
pub fn restore_fd_limit() {
    if let Some(l) = STARTED_WITH.get() {
        // SAFETY: setrlimit from a stored value.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, l) };
    }
}

/// The files read in one tick, by path below the root.
#[derive(Debug, Default)]
struct TickReads {
    files: std::collections::HashMap<PathBuf, String>,
}

impl Default for ProcRoot {
    fn default() -> Self {
        Self::new("/proc")
    }
}

impl ProcRoot {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), buf_capacity: 1024, tick: None, kept: None }
    }

    /// This root and its clones keep up to `cap` per-process files open
    /// between reads (see `ProcessFiles`).
    pub fn keeping_files(mut self, cap: usize) -> Self {
        let files = ProcessFiles { files: Default::default(), tick: 0, cap, buf: Vec::new() };
        self.kept = Some(std::sync::Arc::new(std::sync::Mutex::new(files)));
        self
    }

    /// This root and its clones share each tick's reads: a file read once
    /// in a tick is given to later readers as read then, until `new_tick`.
    pub fn sharing_reads(mut self) -> Self {
        self.tick = Some(Default::default());
        self
    }

    /// Starts a new tick: files are read afresh; kept files not read in
    /// the last tick are closed.
    pub fn new_tick(&self) {
        if let Some(k) = &self.kept
            && let Ok(mut k) = k.lock()
        {
            k.new_tick();
        }
        if let Some(t) = &self.tick
            && let Ok(mut t) = t.lock()
        {
            t.files.clear();
        }
    }

    /// A process's or thread's `stat` and `schedstat` are never shared:
    /// they hold the CPU counters procfs mode takes at its snapshot's
    /// instant (the system-wide files and the momentary figures are).
    fn shareable(rel: &Path) -> bool {
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        !(name == "schedstat" || (name == "stat" && rel.components().count() > 1))
    }

    fn shared_text(&self, rel: &Path) -> Option<String> {
        if !Self::shareable(rel) {
            return None;
        }
        let t = self.tick.as_ref()?.lock().ok()?;
        t.files.get(rel).cloned()
    }

    fn share(&self, rel: &Path, text: &str) {
        if Self::shareable(rel)
            && let Some(t) = &self.tick
            && let Ok(mut t) = t.lock()
        {
            t.files.insert(rel.to_path_buf(), text.to_string());
        }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// True for the running system's /proc (not a copy or a fake one), whose
    /// files also say things through their metadata.
    pub fn is_live(&self) -> bool {
        self.root == Path::new("/proc")
    }

    /// The size of process `pid`'s descriptor directory through a kept
    /// descriptor (see `ProcessFiles::fd_count`); None where files are not
    /// kept or it cannot be had that way.
    pub fn kept_fd_count(&self, pid: i32) -> Option<u64> {
        let k = self.kept.as_ref()?;
        k.lock().ok()?.fd_count(&self.root, pid)
    }

    /// Reads a whole file below the root as text.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<String, ReadError> {
        let rel = rel.as_ref();
        if let Some(text) = self.shared_text(rel) {
            return Ok(text);
        }
        let text = self.read_file(rel)?;
        self.share(rel, &text);
        Ok(text)
    }

    fn read_file(&self, rel: &Path) -> Result<String, ReadError> {
        if let Some(k) = &self.kept
            && ProcessFiles::keeps(rel)
            && let Ok(mut k) = k.lock()
            && let Some(text) = k.read(&self.root, rel)
        {
            return Ok(text);
        }
        let path = self.root.join(rel);
        let mut text = String::with_capacity(self.buf_capacity);
        let res = std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut text));
        match res {
            Ok(_) => Ok(text),
            // ENOENT: gone before open; ESRCH: gone between open and read.
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
                Err(ReadError::Gone(path))
            }
            Err(source) => Err(ReadError::Io { path, source }),
        }
    }

    fn parsed<T>(&self, rel: String, f: impl Fn(&str) -> Result<T, ParseError>) -> Result<T, ReadError> {
        let text = self.read(&rel)?;
        f(&text).map_err(|source| ReadError::Parse { path: self.root.join(rel), source })
    }

    /// `/proc/<pid>/stat`.
    pub fn stat(&self, pid: i32) -> Result<Stat, ReadError> {
        self.parsed(format!("{pid}/stat"), parse::stat)
    }

    /// `/proc/<pid>/task/<pid>/stat`: the main thread's stat. The same as
    /// the process's but for utime, stime, fault counts and guest time,
    /// which are the main thread's alone; the kernel does not walk every
    /// thread to make it (on a 960-thread process 13 us against 31 us).
    pub fn leader_stat(&self, pid: i32) -> Result<Stat, ReadError> {
        self.parsed(format!("{pid}/task/{pid}/stat"), parse::stat)
    }

    /// Every process id (the numeric entries of the root).
    pub fn pids(&self) -> Result<Vec<i32>, ReadError> {
        let dir = std::fs::read_dir(&self.root).map_err(|e| ReadError::Io { path: self.root.clone(), source: e })?;
        Ok(dir.flatten().filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok())).collect())
    }

    /// Thread ids of process `pid` (`/proc/<pid>/task`).
    pub fn tasks(&self, pid: i32) -> Result<Vec<i32>, ReadError> {
        let path = self.root.join(format!("{pid}/task"));
        let dir = std::fs::read_dir(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Gone(path.clone()),
            _ => ReadError::Io { path: path.clone(), source: e },
        })?;
        let mut tids = Vec::new();
        for entry in dir.flatten() {
            if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
                tids.push(tid);
            }
        }
        Ok(tids)
    }

    /// The scheduler statistics of thread `tid` of process `pid`.
    pub fn task_schedstat(&self, pid: i32, tid: i32) -> Result<parse::Schedstat, ReadError> {
        self.parsed(format!("{pid}/task/{tid}/schedstat"), parse::schedstat)
    }

    /// The stat of thread `tid` of process `pid` (its own figures).
    pub fn task_stat(&self, pid: i32, tid: i32) -> Result<Stat, ReadError> {
        self.parsed(format!("{pid}/task/{tid}/stat"), parse::stat)
    }

    /// Child processes forked by thread `tid` of process `pid`.
    pub fn task_children(&self, pid: i32, tid: i32) -> Result<Vec<i32>, ReadError> {
        self.parsed(format!("{pid}/task/{tid}/children"), parse::id_list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_files_see_new_content() {
        let p = crate::base::proc::testutil::FakeProc::new();
        p.file("loadavg", "0.10 0.20 0.30 1/100 42\n");
        let root = p.root();
        let mut kept = KeptFiles::default();
        assert_eq!(kept.read(&root, "loadavg").unwrap(), "0.10 0.20 0.30 1/100 42\n");
        p.file("loadavg", "1.50 0.20 0.30 1/100 43\n");
        assert_eq!(kept.read(&root, "loadavg").unwrap(), "1.50 0.20 0.30 1/100 43\n");
        let long = "x".repeat(10_000);
        p.file("meminfo", &long);
        assert_eq!(kept.read(&root, "meminfo").unwrap(), long);
        assert!(kept.read(&root, "nope").unwrap_err().is_gone());
    }

    #[test]
    fn kept_fd_directory_counts_descriptors_and_forgets_a_gone_process() {
        use std::process::{Command, Stdio};
        // A process with 0, 1, 2 and three more open: 6 descriptors at least.
        let mut child = Command::new("sh")
            .args(["-c", "exec 3</dev/null 4</dev/null 5</dev/null; exec sleep 5"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let root = ProcRoot::new("/proc").keeping_files(8);
        // Against a listing of the directory (descriptors the test harness
        // left inheritable may add some).
        let listed = || std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).ok();
        let mut n = None;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            n = root.kept_fd_count(pid);
            if n.is_some_and(|n| n >= 6) && n == listed() {
                break;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // The size of /proc/<pid>/fd counts descriptors from Linux 6.2 on (0 before).
        if n == Some(0) {
            return;
        }
        assert!(n.is_some_and(|n| n >= 6), "{n:?}");
        assert_eq!(root.kept_fd_count(pid), None, "reaped: the kept descriptor is closed");
        assert_eq!(root.kept_fd_count(i32::MAX), None, "no such process");
    }

    #[test]
    fn kept_process_files_see_new_content_and_close_when_unread() {
        let p = crate::base::proc::testutil::FakeProc::new();
        p.file("7/status", "a\n");
        p.file("7/limits", "l1\n");
        let root = p.root().keeping_files(8);
        let other = root.clone();
        assert_eq!(root.read("7/status").unwrap(), "a\n");
        p.file("7/status", "b\n");
        assert_eq!(other.read("7/status").unwrap(), "b\n");
        let open = |r: &ProcRoot| r.kept.as_ref().unwrap().lock().unwrap().files.len();
        assert_eq!(open(&root), 1, "status is kept, limits is not");
        assert_eq!(root.read("7/limits").unwrap(), "l1\n");
        assert_eq!(open(&root), 1);
        // An empty read (as of a process gone meanwhile): the kept file is
        // closed and the path read instead.
        p.file("7/status", "");
        assert_eq!(root.read("7/status").unwrap(), "", "an empty read is read again by path");
        assert_eq!(open(&root), 0);
        assert!(root.read("8/status").unwrap_err().is_gone());
        // Not read for a whole tick: closed.
        p.file("7/io", "x\n");
        root.read("7/io").unwrap();
        root.new_tick();
        assert_eq!(open(&root), 1);
        root.new_tick();
        assert_eq!(open(&root), 0);
        // No room: read by path.
        let tight = p.root().keeping_files(0);
        assert_eq!(tight.read("7/io").unwrap(), "x\n");
    }

    #[test]
    fn clones_share_a_ticks_reads_but_not_cpu_counters() {
        let p = crate::base::proc::testutil::FakeProc::new();
        p.file("loadavg", "1\n");
        p.file("7/status", "a\n");
        p.file("7/stat", "s1\n");
        p.file("7/task/7/schedstat", "1 2 3\n");
        let root = p.root().sharing_reads();
        let other = root.clone();
        let mut kept = KeptFiles::default();
        for f in ["7/status", "7/stat", "7/task/7/schedstat"] {
            assert!(root.read(f).is_ok());
        }
        assert_eq!(kept.read(&root, "loadavg").unwrap(), "1\n");
        p.file("loadavg", "2\n");
        p.file("7/status", "b\n");
        p.file("7/stat", "s2\n");
        p.file("7/task/7/schedstat", "4 5 6\n");
        // Within the tick: what was read then, except the CPU counters.
        assert_eq!(other.read("7/status").unwrap(), "a\n");
        assert_eq!(KeptFiles::default().read(&other, "loadavg").unwrap(), "1\n");
        assert_eq!(other.read("7/stat").unwrap(), "s2\n");
        assert_eq!(other.read("7/task/7/schedstat").unwrap(), "4 5 6\n");
        other.new_tick();
        assert_eq!(root.read("7/status").unwrap(), "b\n");
        assert_eq!(kept.read(&root, "loadavg").unwrap(), "2\n");
        // Without sharing every read is fresh.
        let plain = p.root();
        assert_eq!(plain.read("7/status").unwrap(), "b\n");
    }

    #[test]
    fn missing_files_are_gone_and_bad_files_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = ProcRoot::new(dir.path());
        assert!(root.stat(1).unwrap_err().is_gone());
        assert!(root.tasks(1).unwrap_err().is_gone());
        std::fs::create_dir_all(dir.path().join("5/task/5")).unwrap();
        std::fs::write(dir.path().join("5/stat"), "5 (x) R").unwrap();
        let e = root.stat(5).unwrap_err();
        assert!(!e.is_gone());
        assert!(e.to_string().contains("5/stat"), "{e}");
        std::fs::write(dir.path().join("5/task/5/schedstat"), "77 0 0\n").unwrap();
        assert_eq!(root.task_schedstat(5, 5).unwrap().run_ns, 77);
        assert_eq!(root.tasks(5).unwrap(), vec![5]);
    }
}
