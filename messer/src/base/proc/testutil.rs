//! A fake /proc in a temporary directory for the parsers' and readers' tests.

use super::ProcRoot;

pub struct FakeProc {
    dir: tempfile::TempDir,
}

impl Default for FakeProc {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeProc {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn root(&self) -> ProcRoot {
        ProcRoot::new(self.dir.path())
    }

    /// Writes `content` to `rel` below the root, creating directories.
    pub fn file(&self, rel: &str, content: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    }

    /// A process with threads `tids` (the first is the leader), 1 s of
    /// user time, 300 pages resident and a vsize of 1 MiB.
    pub fn process(&self, pid: i32, ppid: i32, comm: &str, tids: &[i32]) {
        let stat = |id: i32| {
            format!(
                "{id} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 100 20 3 4 20 0 {n} 0 5000 1048576 300 \
                 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 7 0 0\n",
                n = tids.len()
            )
        };
        self.file(&format!("{pid}/stat"), &stat(pid));
        for &tid in tids {
            self.file(&format!("{pid}/task/{tid}/stat"), &stat(tid));
            self.file(&format!("{pid}/task/{tid}/schedstat"), "1000000 0 5\n");
            self.file(&format!("{pid}/task/{tid}/children"), "");
        }
    }
}
