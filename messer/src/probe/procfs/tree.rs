//! The process tree below a root process, walked through
//! `/proc/<pid>/task/<tid>/children` (children are listed per forking thread).

use super::root::ProcRoot;

/// `root` and all of its descendants that exist now, root first.
/// Processes that exit during the walk are left out.
pub fn descendants(proc: &ProcRoot, root: i32) -> Vec<i32> {
    descendants_of(proc, &[root])
}

/// `roots` (each once) and all of their descendants that exist now.
pub fn descendants_of(proc: &ProcRoot, roots: &[i32]) -> Vec<i32> {
    let mut out = Vec::with_capacity(roots.len());
    let mut seen = std::collections::HashSet::new();
    for &r in roots {
        if seen.insert(r) {
            out.push(r);
        }
    }
    let mut i = 0;
    while i < out.len() {
        let pid = out[i];
        i += 1;
        let Ok(tids) = proc.tasks(pid) else { continue };
        for tid in tids {
            if let Ok(children) = proc.task_children(pid, tid) {
                for child in children {
                    // A pid can only be listed once unless the tree changed
                    // under us; never walk one twice.
                    if seen.insert(child) {
                        out.push(child);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dir: &std::path::Path, pid: i32, tid: i32, children: &str) {
        let d = dir.join(format!("{pid}/task/{tid}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("children"), children).unwrap();
    }

    #[test]
    fn walks_children_of_every_thread() {
        let dir = tempfile::tempdir().unwrap();
        mk(dir.path(), 10, 10, "11 ");
        mk(dir.path(), 10, 12, "13");
        mk(dir.path(), 11, 11, "14");
        mk(dir.path(), 13, 13, "");
        // 14 exited: no directory.
        let proc = ProcRoot::new(dir.path());
        let mut got = descendants(&proc, 10);
        got.sort();
        assert_eq!(got, vec![10, 11, 13, 14]);
    }
}
