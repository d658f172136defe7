//! The process the user asked about: found, identified and watched for exit.

pub mod cgroup;
pub mod launch;
pub mod pid_command;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd as _, OwnedFd};

use crate::base::proc::{ProcRoot, parse::PF_KTHREAD};

/// Why a target cannot be recorded.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with pid {0}; check the pid (`ps -p {0}`) and try again")]
    NoSuchProcess(i32),
    #[error("pid {0} is a kernel thread, which has no user-space resource use to record; pass a user process")]
    KernelThread(i32),
    #[error("pid {0} is a thread, not a process; pass the process id (the Tgid in /proc/{0}/status)")]
    Thread(i32),
    #[error("pid must be positive, got {0}")]
    BadPid(i32),
    #[error("cannot watch pid {pid}: {source}")]
    Pidfd { pid: i32, source: io::Error },
    #[error("cannot read /proc for pid {pid}: {reason}")]
    Proc { pid: i32, reason: String },
}

/// A live process being recorded.
#[derive(Debug)]
pub struct Target {
    pub pid: i32,
    /// Start time after boot in clock ticks (identity together with the pid).
    pub start_ticks: u64,
    pub ppid: i32,
    pub comm: String,
    pidfd: OwnedFd,
}

impl Target {
    /// Finds process `pid` and opens a pidfd to learn of its exit.
    pub fn attach(proc: &ProcRoot, pid: i32) -> Result<Self, TargetError> {
        if pid <= 0 {
            return Err(TargetError::BadPid(pid));
        }
        // SAFETY: pidfd_open(2) with flags 0.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::ESRCH) => TargetError::NoSuchProcess(pid),
                Some(libc::EINVAL) => TargetError::Thread(pid),
                _ => TargetError::Pidfd { pid, source: e },
            });
        }
        // SAFETY: a fresh fd we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        // Read /proc after the pidfd exists: the pid cannot be reused under us.
        let stat = proc.stat(pid).map_err(|e| {
            if e.is_gone() { TargetError::NoSuchProcess(pid) } else { TargetError::Proc { pid, reason: e.to_string() } }
        })?;
        if stat.flags & PF_KTHREAD != 0 {
            return Err(TargetError::KernelThread(pid));
        }
        Ok(Self { pid, start_ticks: stat.starttime, ppid: stat.ppid, comm: stat.comm, pidfd })
    }

    /// Readable once the process has exited.
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
}
