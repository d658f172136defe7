//! Launching `messer [OPTIONS] -- CMD [ARGS...]`: the child is forked and
//! held before exec until the probe tracks it, so that it is measured from
//! its first instruction. Under sudo it runs as the invoking user. stdin,
//! stdout and stderr are messer's own.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

/// Why a command could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: permission denied")]
    NotExecutable(String),
    #[error("cannot run {cmd}: {source}")]
    Exec { cmd: String, source: io::Error },
    #[error("cannot start the command: {0}")]
    Fork(io::Error),
    #[error("the command line contains a NUL byte")]
    Nul,
}

impl LaunchError {
    /// The exit code a shell would use.
    pub fn exit_code(&self) -> u8 {
        match self {
            LaunchError::NotFound(_) => 127,
            LaunchError::NotExecutable(_) => 126,
            _ => 1,
        }
    }
}

/// Whom the child runs as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    pub user: CString,
    pub home: Option<String>,
}

/// The invoking user under sudo (SUDO_UID, SUDO_GID, SUDO_USER), if any.
pub fn sudo_invoker() -> Option<RunAs> {
    let (uid, gid) = sudo_ids()?;
    let user = std::env::var("SUDO_USER").ok()?;
    let home = passwd_entry(|f| f.first() == Some(&user.as_str())).and_then(|f| f.get(5).cloned());
    Some(RunAs { uid, gid, user: CString::new(user).ok()?, home })
}

/// The fields of the first /etc/passwd line for which `matches` holds.
pub fn passwd_entry(matches: impl Fn(&[&str]) -> bool) -> Option<Vec<String>> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<&str>>())
        .find(|f| matches(f))
        .map(|f| f.into_iter().map(String::from).collect())
}

/// A child forked and waiting for `release` before it execs.
pub struct Paused {
    pub pid: i32,
    go: Option<OwnedFd>,
    exec_err: OwnedFd,
    cmd: String,
}

fn pipe(flags: i32) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The supplementary groups of `r`'s user (getgrouplist, grown until the
/// list fits).
fn group_list(r: &RunAs) -> io::Result<Vec<libc::gid_t>> {
    let mut n: libc::c_int = 32;
    for _ in 0..8 {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let want = n;
        // SAFETY: a NUL-terminated name and a buffer of `n` gids.
        if unsafe { libc::getgrouplist(r.user.as_ptr(), r.gid, groups.as_mut_ptr(), &mut n) } >= 0 {
            groups.truncate(n as usize);
            return Ok(groups);
        }
        // Too small: `n` now says how many there are.
        n = n.max(want * 2);
    }
    Err(io::Error::other("the user's group list keeps growing"))
}

/// Forks the child for `argv`; it waits until `Paused::release`.
/// Must be called while messer has a single thread (fork in a
/// multi-threaded process may deadlock the child).
pub fn spawn_paused(argv: &[String], run_as: Option<&RunAs>) -> Result<Paused, LaunchError> {
    let cmd = argv.first().cloned().unwrap_or_default();
    let cargs: Vec<CString> =
        argv.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>().map_err(|_| LaunchError::Nul)?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // The environment, adjusted for the user the child runs as.
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    if let Some(r) = run_as {
        let user = r.user.to_string_lossy().into_owned();
        env.retain(|(k, _)| !matches!(k.as_str(), "USER" | "LOGNAME" | "HOME"));
        env.push(("USER".into(), user.clone()));
        env.push(("LOGNAME".into(), user));
        if let Some(h) = &r.home {
            env.push(("HOME".into(), h.clone()));
        }
    }
    let cenv: Vec<CString> = env.iter().filter_map(|(k, v)| CString::new(format!("{k}={v}")).ok()).collect();
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // The user's groups, looked up here (initgroups reads the group
    // database and allocates: not for a forked child).
    let groups = match run_as {
        Some(r) => group_list(r).map_err(LaunchError::Fork)?,
        None => Vec::new(),
    };

    let (go_r, go_w) = pipe(libc::O_CLOEXEC).map_err(LaunchError::Fork)?;
    let (err_r, err_w) = pipe(libc::O_CLOEXEC).map_err(LaunchError::Fork)?;
    // SAFETY: fork; the child only makes system calls on data prepared
    // above (close, read, sigprocmask, setgroups, setgid, setuid, write),
    // then execs (execvpe searches PATH with the prepared strings) or
    // _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(LaunchError::Fork(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: child side, system calls on prepared data only.
        unsafe {
            // Only messer holds the write ends: EOF then means it gave up.
            libc::close(go_w.as_raw_fd());
            libc::close(err_r.as_raw_fd());
            // Wait for the go byte (or EOF if messer gave up).
            let mut b = 0u8;
            if libc::read(go_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1) != 1 {
                libc::_exit(1);
            }
            // messer blocks its stop signals for a signalfd: not the child.
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            if let Some(r) = run_as
                && (libc::setgroups(groups.len(), groups.as_ptr()) != 0
                    || libc::setgid(r.gid) != 0
                    || libc::setuid(r.uid) != 0)
            {
                let e = *libc::__errno_location();
                libc::write(err_w.as_raw_fd(), (&e as *const i32).cast(), 4);
                libc::_exit(126);
            }
            libc::execvpe(ptrs[0], ptrs.as_ptr(), envp.as_ptr());
            let e = *libc::__errno_location();
            libc::write(err_w.as_raw_fd(), (&e as *const i32).cast(), 4);
            libc::_exit(if e == libc::ENOENT { 127 } else { 126 });
        }
    }
    drop(go_r);
    drop(err_w);
    Ok(Paused { pid, go: Some(go_w), exec_err: err_r, cmd })
}

impl Paused {
    /// Lets the child exec; returns an error if exec failed (the child has
    /// then exited and is reaped here).
    pub fn release(&mut self) -> Result<(), LaunchError> {
        if let Some(go) = self.go.take() {
            // SAFETY: a one-byte write to our pipe.
            unsafe { libc::write(go.as_raw_fd(), b"g".as_ptr().cast(), 1) };
        }
        let mut e = 0i32;
        // SAFETY: reading at most 4 bytes into an i32; EOF (0) means the exec
        // succeeded (the pipe was closed on exec).
        let n = unsafe { libc::read(self.exec_err.as_raw_fd(), (&mut e as *mut i32).cast(), 4) };
        if n == 4 {
            let _ = wait(self.pid);
            return Err(match e {
                libc::ENOENT => LaunchError::NotFound(self.cmd.clone()),
                libc::EACCES => LaunchError::NotExecutable(self.cmd.clone()),
                _ => LaunchError::Exec { cmd: self.cmd.clone(), source: io::Error::from_raw_os_error(e) },
            });
        }
        Ok(())
    }

    /// Abandons the child before it execs (it exits at once).
    pub fn abandon(mut self) {
        self.go = None;
        let _ = wait(self.pid);
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The exit code messer passes on (128 + signal, as shells do).
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(c) => (c & 0xff) as u8,
            Exit::Signal(s) => ((128 + s) & 0xff) as u8,
        }
    }
}

/// Waits for child `pid`.
pub fn wait(pid: i32) -> io::Result<Exit> {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFSIGNALED(status) {
        Exit::Signal(libc::WTERMSIG(status))
    } else {
        Exit::Code(libc::WEXITSTATUS(status))
    })
}

/// The invoking user's uid and gid under sudo (SUDO_UID, SUDO_GID).
pub fn sudo_ids() -> Option<(u32, u32)> {
    let id = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    Some((id("SUDO_UID")?, id("SUDO_GID")?))
}
