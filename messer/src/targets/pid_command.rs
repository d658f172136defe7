//! `--pid-command`: a shell command that prints the pid to record.

use std::io::Read;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use super::launch::RunAs;

/// Longest a run may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Most of a run's output that is kept (the rest is read and dropped).
const KEEP_BYTES: u64 = 64 << 10;

/// A run of the command on a thread of its own, so that a slow command never
/// delays sampling.
pub struct Pending(mpsc::Receiver<Result<i32, String>>);

impl Pending {
    /// Starts `cmd` (see [`run`]) on its own thread.
    pub fn start(cmd: &str, run_as: Option<&RunAs>) -> Result<Self, String> {
        let (tx, rx) = mpsc::channel();
        let (cmd, run_as) = (cmd.to_string(), run_as.cloned());
        std::thread::Builder::new()
            .name("messer-pid-cmd".into())
            .spawn(move || {
                let _ = tx.send(run(&cmd, run_as.as_ref()));
            })
            .map_err(|e| format!("cannot start a thread for it: {e}"))?;
        Ok(Pending(rx))
    }

    /// The result, if the run has ended.
    pub fn try_result(&self) -> Option<Result<i32, String>> {
        match self.0.try_recv() {
            Ok(r) => Some(r),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err("its thread ended without a result".into())),
        }
    }

    /// Waits for the result (the run itself is bounded by [`TIMEOUT`]).
    pub fn wait(self) -> Result<i32, String> {
        self.0.recv_timeout(TIMEOUT + Duration::from_secs(2)).unwrap_or_else(|e| Err(format!("gave no result: {e}")))
    }
}

/// Output read so far by a [`drain`] thread, and its end.
struct Drained {
    kept: Arc<Mutex<Vec<u8>>>,
    end: mpsc::Receiver<()>,
}

impl Drained {
    /// What was read, after waiting up to `wait` for the end of the output.
    fn text(self, wait: Duration) -> String {
        let _ = self.end.recv_timeout(wait);
        let kept = self.kept.lock().map(|k| k.clone()).unwrap_or_default();
        String::from_utf8_lossy(&kept).into_owned()
    }
}

/// Reads `from` to its end on a thread, keeping the first [`KEEP_BYTES`].
fn drain(from: Option<impl Read + Send + 'static>) -> Drained {
    let (tx, end) = mpsc::channel();
    let kept = Arc::new(Mutex::new(Vec::new()));
    let shared = kept.clone();
    if let Some(mut from) = from {
        let _ = std::thread::Builder::new().name("messer-pid-out".into()).spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                if let Ok(mut k) = shared.lock() {
                    let room = (KEEP_BYTES as usize).saturating_sub(k.len());
                    k.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            let _ = tx.send(());
        });
    }
    Drained { kept, end }
}

/// Runs `cmd` with `sh -c` (as `run_as` if given) and returns the one pid it
/// printed, or why it did not give one. Its output is read while it runs (a
/// command that prints more than a pipe holds does not block), and a run
/// longer than [`TIMEOUT`] is killed.
pub fn run(cmd: &str, run_as: Option<&RunAs>) -> Result<i32, String> {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // SAFETY: the hook only calls setrlimit (async-signal-safe).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            crate::base::proc::root::restore_fd_limit();
            Ok(())
        });
    }
    if let Some(r) = run_as {
        let user = r.user.to_string_lossy().into_owned();
        c.uid(r.uid).gid(r.gid).env("USER", &user).env("LOGNAME", &user);
        if let Some(h) = &r.home {
            c.env("HOME", h);
        }
    }
    let mut child = c.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let out_rx = drain(child.stdout.take());
    let err_rx = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if started.elapsed() > TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s and was killed", TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("cannot wait for it: {e}")),
        }
    };
    // A process it left in the background may hold the pipes open: wait a
    // little for the rest of the output, not for that process.
    let left = TIMEOUT.saturating_sub(started.elapsed()).min(Duration::from_secs(1));
    let out = out_rx.text(left);
    let err = err_rx.text(Duration::from_millis(100));
    if !status.success() {
        let why = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        let detail = err.lines().next().map(|l| format!(": {}", cut(l))).unwrap_or_default();
        return Err(format!("{why}{detail}"));
    }
    parse(&out)
}

/// The pid in a command's output: exactly one positive integer.
pub fn parse(out: &str) -> Result<i32, String> {
    let words: Vec<&str> = out.split_whitespace().collect();
    match words.as_slice() {
        [] => Err("printed nothing".into()),
        [one] => match one.parse::<i32>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("printed {:?}, not a pid", cut(one))),
        },
        many if many.iter().all(|w| w.parse::<i32>().is_ok()) => {
            Err(format!("printed {} pids ({}); it must print exactly one", many.len(), cut(&many.join(" "))))
        }
        _ => Err(format!("printed {:?}, not a pid", cut(out.trim()))),
    }
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_pid() {
        assert_eq!(parse("1234\n"), Ok(1234));
        assert_eq!(parse("  42  "), Ok(42));
        assert!(parse("").unwrap_err().contains("nothing"));
        assert!(parse("12 13\n").unwrap_err().contains("2 pids"));
        assert!(parse("hello").unwrap_err().contains("not a pid"));
        assert!(parse("-5").unwrap_err().contains("not a pid"));
        assert!(parse("0").unwrap_err().contains("not a pid"));
    }

    #[test]
    fn runs_the_shell() {
        assert_eq!(run("echo 77", None), Ok(77));
        assert!(run("exit 3", None).unwrap_err().contains("status 3"));
        assert!(run("echo oops >&2; false", None).unwrap_err().contains("oops"));
    }

    #[test]
    fn output_beyond_a_pipe_buffer_does_not_block() {
        let t = Instant::now();
        let e = run("head -c 1000000 /dev/zero | tr '\\0' x", None).unwrap_err();
        assert!(e.contains("not a pid"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert_eq!(run("yes 5 | head -c 200000 >&2; echo 9", None), Ok(9));
    }

    #[test]
    fn a_background_process_holding_the_pipe_does_not_block() {
        let t = Instant::now();
        assert_eq!(run("sleep 5 & echo 12", None), Ok(12));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }

    #[test]
    fn runs_off_the_calling_thread() {
        let p = Pending::start("sleep 0.3; echo 31", None).unwrap();
        assert!(p.try_result().is_none());
        assert_eq!(p.wait(), Ok(31));
    }
}
