//! Known amounts of IO: `io --mib N [--chunk-kib K] --dir D` writes N MiB to
//! a file in D with write(2), reads it back with read(2), then sends N MiB
//! over a UNIX socket pair with send(2)/recv(2) (sendto/recvfrom). Prints
//! the calls it made and the bytes they moved, per family.

use std::os::fd::AsRawFd as _;

#[derive(Default)]
pub struct Counts {
    pub calls: [u64; 4],
    pub bytes: [u64; 4],
}

const READ: usize = 0;
const WRITE: usize = 1;
const RECV: usize = 2;
const SEND: usize = 3;

fn check(ret: isize, what: &str) -> u64 {
    if ret < 0 {
        eprintln!("messer-workload: {what}: {}", std::io::Error::last_os_error());
        std::process::exit(1);
    }
    ret as u64
}

pub fn io(mib: usize, chunk_kib: usize, dir: &str) -> Counts {
    let chunk = vec![7u8; chunk_kib * 1024];
    let mut buf = vec![0u8; chunk.len()];
    let total = (mib * 1024 * 1024) as u64;
    let mut c = Counts::default();
    let path = std::path::Path::new(dir).join(format!("messer-io-{}", std::process::id()));
    let file =
        std::fs::File::options().create(true).truncate(true).read(true).write(true).open(&path).unwrap_or_else(|e| {
            eprintln!("messer-workload: {}: {e}", path.display());
            std::process::exit(1)
        });
    let fd = file.as_raw_fd();
    let mut done = 0;
    while done < total {
        // SAFETY: a write from our buffer to our file.
        let n = check(unsafe { libc::write(fd, chunk.as_ptr().cast(), chunk.len()) }, "write");
        c.calls[WRITE] += 1;
        c.bytes[WRITE] += n;
        done += n;
    }
    // SAFETY: rewinding our own file.
    unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    loop {
        // SAFETY: a read into our buffer.
        let n = check(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) }, "read");
        c.calls[READ] += 1;
        c.bytes[READ] += n;
        if n == 0 {
            break;
        }
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    let mut sv = [0i32; 2];
    // SAFETY: socketpair into a local array.
    check(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, sv.as_mut_ptr()) } as isize, "socketpair");
    let mut sent = 0;
    while sent < total {
        // SAFETY: send then drain on our socket pair (send <= buffer size).
        let n = check(unsafe { libc::send(sv[0], chunk.as_ptr().cast(), chunk.len().min(64 * 1024), 0) }, "send");
        c.calls[SEND] += 1;
        c.bytes[SEND] += n;
        sent += n;
        let mut got = 0;
        while got < n {
            // SAFETY: a receive into our buffer.
            let m = check(unsafe { libc::recv(sv[1], buf.as_mut_ptr().cast(), buf.len(), 0) }, "recv");
            c.calls[RECV] += 1;
            c.bytes[RECV] += m;
            got += m;
        }
    }
    // SAFETY: closing our own sockets.
    unsafe {
        libc::close(sv[0]);
        libc::close(sv[1]);
    }
    c
}
