//! A cgroup v2 as the target (`--cgroup PATH`, `--unit NAME`): found under
//! the cgroup2 mount (on a host with cgroup v1 and a unified hierarchy
//! beside it, that one), identified by its id (the directory's inode
//! number, which is the kernel's `cgroup->kn->id`) and level, its members
//! read from `cgroup.procs` of it and every cgroup below it.

use std::path::{Component, Path, PathBuf};

/// A resolved target cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    /// Its directory.
    pub path: PathBuf,
    /// The cgroup2 mount it is under.
    pub mount: PathBuf,
    /// The kernel's cgroup id.
    pub id: u64,
    /// Its depth below the mount's root cgroup (the root is 0).
    pub level: u32,
}

/// Mount points of `fstype` in a mountinfo text (field 5 is the mount
/// point, the field after " - " the file system type; spaces are octal
/// escapes).
fn mounts_of(mountinfo: &str, fstype: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            (right.split_whitespace().next()? == fstype).then(|| PathBuf::from(unescape(point)))
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt as _;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push(d.iter().fold(0u8, |v, c| v.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    std::ffi::OsString::from_vec(out)
}

impl CgroupDir {
    /// Resolves `arg` (absolute, or relative to the cgroup2 mount) with the
    /// mounts of `mountinfo`. The error is a usage message.
    pub fn resolve(arg: &Path, mountinfo: &str) -> Result<Self, String> {
        let v2 = mounts_of(mountinfo, "cgroup2");
        let Some(mount) = v2.first().cloned() else {
            return Err("no cgroup v2 hierarchy is mounted here (no cgroup2 in /proc/self/mountinfo); mount one \
                        (`mount -t cgroup2 none /sys/fs/cgroup/unified`) or record with --pid or --comm"
                .into());
        };
        let given = if arg.is_absolute() { arg.to_path_buf() } else { mount.join(arg) };
        let path = given.canonicalize().map_err(|e| {
            format!(
                "--cgroup {}: {e}; give a cgroup v2 directory, absolute or relative to {}",
                arg.display(),
                mount.display()
            )
        })?;
        let Some(under) = v2.iter().filter(|m| path.starts_with(m)).max_by_key(|m| m.as_os_str().len()) else {
            let v1 = mounts_of(mountinfo, "cgroup");
            if v1.iter().any(|m| path.starts_with(m)) {
                return Err(format!(
                    "--cgroup {}: that is a cgroup v1 controller directory; messer follows cgroup v2: give the \
                     directory under {}",
                    arg.display(),
                    mount.display()
                ));
            }
            return Err(format!(
                "--cgroup {}: not a cgroup (not under the cgroup v2 mount {})",
                arg.display(),
                mount.display()
            ));
        };
        if !path.join("cgroup.procs").is_file() {
            return Err(format!("--cgroup {}: not a cgroup directory (it has no cgroup.procs)", arg.display()));
        }
        let id = std::os::unix::fs::MetadataExt::ino(
            &std::fs::metadata(&path).map_err(|e| format!("--cgroup {}: {e}", arg.display()))?,
        );
        let rel = path.strip_prefix(under).unwrap_or(Path::new(""));
        let level = rel.components().filter(|c| matches!(c, Component::Normal(_))).count() as u32;
        Ok(CgroupDir { path, mount: under.clone(), id, level })
    }

    /// Resolves from this machine's mounts.
    pub fn resolve_here(arg: &Path) -> Result<Self, String> {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo to find the cgroup v2 mount: {e}"))?;
        Self::resolve(arg, &mountinfo)
    }

    /// The processes in it and below it now (an empty list once it is gone).
    pub fn members(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(d) = dirs.pop() {
            if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if let Ok(entries) = std::fs::read_dir(&d) {
                for e in entries.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
            }
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Does the cgroup still exist?
    pub fn exists(&self) -> bool {
        self.path.join("cgroup.procs").is_file()
    }
}

/// The cgroup of systemd unit `name` (`systemctl show -p ControlGroup`),
/// relative to the cgroup2 mount. Where systemd is not running, a usage
/// message pointing at --cgroup.
pub fn unit_cgroup(name: &str) -> Result<PathBuf, String> {
    if !Path::new("/run/systemd/system").is_dir() {
        return Err(format!(
            "--unit {name}: systemd is not running here (no /run/systemd/system); give the service's cgroup with \
             --cgroup PATH"
        ));
    }
    let out = std::process::Command::new("systemctl")
        .args(["show", "-p", "ControlGroup", "--value", "--", name])
        .output()
        .map_err(|e| format!("--unit {name}: cannot run systemctl ({e}); give the cgroup with --cgroup PATH"))?;
    let cg = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || cg.is_empty() {
        return Err(format!(
            "--unit {name}: systemd knows no cgroup for it (is it running? `systemctl status {name}`)"
        ));
    }
    Ok(PathBuf::from(cg.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
31 25 0:27 / /sys/fs/cgroup rw shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:28 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
33 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn finds_the_v2_mount_beside_v1() {
        assert_eq!(mounts_of(MOUNTINFO, "cgroup2"), vec![PathBuf::from("/sys/fs/cgroup/unified")]);
        assert_eq!(mounts_of(MOUNTINFO, "cgroup").len(), 1);
        assert_eq!(unescape(r"/a\040b"), "/a b");
    }

    #[test]
    fn refuses_what_is_not_a_v2_cgroup() {
        let none = CgroupDir::resolve(Path::new("/nonexistent/x"), MOUNTINFO).unwrap_err();
        assert!(none.contains("--cgroup /nonexistent/x"), "{none}");
        let tmp = CgroupDir::resolve(Path::new("/tmp"), MOUNTINFO).unwrap_err();
        assert!(tmp.contains("not a cgroup"), "{tmp}");
        let no_v2 = CgroupDir::resolve(Path::new("/tmp"), "").unwrap_err();
        assert!(no_v2.contains("no cgroup v2"), "{no_v2}");
    }
}
