//! `--pid-command`: a shell command that prints the pid to record.

use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::launch::RunAs;

/// Longest a run may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `cmd` with `sh -c` (as `run_as` if given) and returns the one pid it
/// printed, or why it did not give one.
pub fn run(cmd: &str, run_as: Option<&RunAs>) -> Result<i32, String> {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(r) = run_as {
        let user = r.user.to_string_lossy().into_owned();
        c.uid(r.uid).gid(r.gid).env("USER", &user).env("LOGNAME", &user);
        if let Some(h) = &r.home {
            c.env("HOME", h);
        }
    }
    let mut child = c.spawn().map_err(|e| format!("cannot run /bin/sh: {e}"))?;
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
    let mut out = String::new();
    let mut err = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    if !status.success() {
        let why = match status.code() {
            Some(c) => format!("exited with status {c}"),
            None => "was killed by a signal".to_string(),
        };
        let detail = err.lines().next().map(|l| format!(": {l}")).unwrap_or_default();
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
}
