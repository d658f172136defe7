//! The status line: shown on a terminal (here a pseudo-terminal from
//! `script`), refreshed about once a second; `--quiet` turns it off; not
//! shown when stderr is not a terminal.

use messer_tests::*;

fn under_a_terminal(extra: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.h5");
    let cmd = format!(
        "{} --mode procfs --pid 1 --interval 0.1 --duration 2.5 {extra} -o {}",
        messer_bin().display(),
        out.display()
    );
    let o = std::process::Command::new("script").args(["-qefc", &cmd, "/dev/null"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_status_line_on_a_terminal_unless_quiet() {
    let text = under_a_terminal("");
    let updates = text.matches("\r\x1b[Kmesser 00:00:0").count();
    assert!((2..=4).contains(&updates), "about once a second for 2.5 s: {updates} in {text:?}");
    for want in ["rows ", "CPU ", "RSS ", "MiB", "file ", "dropped 0"] {
        assert!(text.contains(want), "{want:?} in {text:?}");
    }
    let quiet = under_a_terminal("--quiet");
    assert!(!quiet.contains("dropped"), "{quiet:?}");
    // Not a terminal: no status line.
    let dir = tempfile::tempdir().unwrap();
    let o = run({
        let mut c = messer();
        c.args(["--mode", "procfs", "--pid", "1", "--duration", "1.2", "-o"]).arg(dir.path().join("x.h5"));
        c
    });
    assert!(!String::from_utf8_lossy(&o.stderr).contains("dropped"));
}
