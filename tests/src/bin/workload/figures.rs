//! Workloads whose page faults, thread states, descriptors or memory are
//! known: each prints what it did (and the kernel's own counts, getrusage)
//! in its JSON line.

use std::time::{Duration, Instant};

/// (minor, major) page faults of this process so far (getrusage).
pub fn faults_so_far() -> (i64, i64) {
    // SAFETY: getrusage into a zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage into a struct of ours.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    (ru.ru_minflt, ru.ru_majflt)
}

/// Touches `pages` fresh anonymous pages (one minor fault each), then, with
/// `file`, maps that file after dropping it from the page cache
/// (POSIX_FADV_DONTNEED: only its clean pages) and reads every page (major
/// faults). Returns the JSON fields: pages touched and the getrusage gains.
pub fn faults(pages: usize, file: Option<&str>) -> String {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let before = faults_so_far();
    // SAFETY: a private anonymous mapping of our own, touched once per page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            pages * page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED, "mmap");
        for i in 0..pages {
            std::ptr::write_volatile((p as *mut u8).add(i * page), 1);
        }
    }
    let mid = faults_so_far();
    if let Some(path) = file {
        let f = std::fs::File::open(path).expect("open --file");
        let len = f.metadata().expect("stat --file").len() as usize;
        use std::os::fd::AsRawFd as _;
        // SAFETY: advice and a read-only shared mapping of an open file.
        unsafe {
            libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            let p = libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0);
            assert!(p != libc::MAP_FAILED, "mmap --file");
            let mut sum = 0u64;
            for i in (0..len).step_by(page) {
                sum += u64::from(std::ptr::read_volatile((p as *const u8).add(i)));
            }
            std::hint::black_box(sum);
        }
    }
    let after = faults_so_far();
    format!(
        ", \"pages\": {pages}, \"minflt_touch\": {}, \"minflt\": {}, \"majflt\": {}, \"minflt_total\": {}, \
         \"majflt_total\": {}",
        mid.0 - before.0,
        after.0 - before.0,
        after.1 - before.1,
        after.0,
        after.1
    )
}

/// `sleepers` threads blocked reading a pipe nobody writes and `busy`
/// spinning threads, for `seconds`.
pub fn states(sleepers: usize, busy: usize, seconds: f64) {
    let mut fds = [0; 2];
    // SAFETY: pipe into a two-element array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    let read_end = fds[0];
    for _ in 0..sleepers {
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            // SAFETY: a read into a local buffer; it blocks until exit.
            unsafe { libc::read(read_end, b.as_mut_ptr().cast(), 1) };
        });
    }
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..busy).map(|_| std::thread::spawn(move || super::spin_until(end))).collect();
    std::thread::sleep(end.saturating_duration_since(Instant::now()));
    for w in workers {
        let _ = w.join();
    }
}

/// Opens `n` more descriptors (/dev/null) and holds them for `seconds`.
pub fn fds(n: usize, seconds: f64) {
    let files: Vec<_> = (0..n).map(|_| std::fs::File::open("/dev/null").expect("open /dev/null")).collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    drop(files);
}

/// Allocates and touches memory 1 MiB at a time until killed (by the OOM
/// killer of the memory cgroup it runs in), at most `mib` MiB.
pub fn hog(mib: usize) {
    let mut keep = Vec::new();
    for _ in 0..mib {
        keep.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&keep);
    }
}

/// Holds `connections` TCP connections over loopback in this process (both
/// ends: twice as many sockets, and the listener), a second descriptor of
/// one of them (`dup`: still one socket), a UDP socket, an `O_PATH`
/// descriptor of a unix socket's path (a socket inode, not a socket), and
/// a thread with a file table of its own (`unshare(CLONE_FILES)`: a copy
/// of the process's, plus a UDP socket only it has), for `seconds`.
/// Returns the truth as JSON members: the IP sockets and the established
/// TCP ones.
pub fn sockets(connections: usize, seconds: f64) -> String {
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::os::fd::AsRawFd as _;
    let want = (2 * connections + 64) as u64;
    let lim = libc::rlimit { rlim_cur: want, rlim_max: want };
    // SAFETY: setrlimit with a valid struct (root may raise the hard limit).
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        panic!("setrlimit: {}", std::io::Error::last_os_error());
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let at = listener.local_addr().expect("address");
    let mut keep = Vec::with_capacity(2 * connections);
    for _ in 0..connections {
        let c = TcpStream::connect(at).expect("connect");
        let (s, _) = listener.accept().expect("accept");
        keep.push(c);
        keep.push(s);
    }
    // SAFETY: dup of an open descriptor; the copy is closed below.
    let copy = unsafe { libc::dup(keep[0].as_raw_fd()) };
    assert!(copy >= 0, "dup: {}", std::io::Error::last_os_error());
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("unix.sock");
    let unix = std::os::unix::net::UnixListener::bind(&path).expect("unix listen");
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: open of a NUL-terminated path; closed below.
    let o_path = unsafe { libc::open(c_path.as_ptr(), libc::O_PATH) };
    assert!(o_path >= 0, "open O_PATH: {}", std::io::Error::last_os_error());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let own = std::thread::spawn(move || {
        // SAFETY: unshare of this thread's file table (a copy of the process's).
        assert_eq!(unsafe { libc::unshare(libc::CLONE_FILES) }, 0, "unshare: {}", std::io::Error::last_os_error());
        let mine = UdpSocket::bind("127.0.0.1:0").expect("udp of the thread");
        ready_tx.send(()).expect("ready");
        std::thread::sleep(Duration::from_secs_f64(seconds));
        drop(mine);
    });
    ready_rx.recv().expect("thread ready");
    std::thread::sleep(Duration::from_secs_f64(seconds));
    let _ = own.join();
    // SAFETY: descriptors opened above.
    unsafe {
        libc::close(copy);
        libc::close(o_path);
    }
    drop((keep, listener, udp, unix));
    // Both ends of each connection, the listener, two UDP sockets.
    format!(", \"ip_sockets\": {}, \"tcp_established\": {}", 2 * connections + 3, 2 * connections)
}
