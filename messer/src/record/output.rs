//! The output file: its default name, refusing to overwrite, and ownership
//! under sudo.

use std::path::{Path, PathBuf};

/// `messer_<pid>_<YYYYmmddTHHMMSS>.h5` in the current directory.
/// `what` names the target (a pid or a comm).
pub fn default_path(what: &str) -> PathBuf {
    let stamp = chrono::Local::now().format("%Y%m%dT%H%M%S");
    let what: String = what.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    PathBuf::from(format!("messer_{what}_{stamp}.h5"))
}

/// Checks that `path` can be created: its directory exists and it does not
/// exist yet. With `force`, an existing regular file (or a symbolic link,
/// which is removed, never written through) is removed; anything else (a
/// device node, directory, FIFO or socket) and any path into /proc, /sys or
/// /dev is refused: messer runs as root and never destroys what it did not
/// create. Returns a one-line reason.
pub fn prepare(path: &Path, force: bool) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("output directory {} does not exist; create it or choose another --output", dir.display()));
    }
    // The directory as the kernel resolves it (symbolic links followed).
    let real_dir = std::fs::canonicalize(dir).map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    for special in ["/proc", "/sys", "/dev"] {
        if real_dir.starts_with(special) {
            return Err(format!(
                "output {} is inside {special}, which holds no recordings; choose a path in a regular directory",
                path.display()
            ));
        }
    }
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot look at {}: {e}", path.display())),
    };
    let kind = file_kind(&meta);
    if kind != "regular file" && kind != "symbolic link" {
        return Err(format!(
            "output {} is a {kind}, not a regular file; messer replaces only regular files, choose another --output",
            path.display()
        ));
    }
    if !force {
        return Err(format!("output file {} exists; choose another --output or pass --force", path.display()));
    }
    std::fs::remove_file(path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

/// What kind of file `meta` describes, in words.
fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_dir() {
        "directory"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Under sudo, gives the file to the invoking user.
pub fn chown_to_invoker(path: &Path) {
    if let Some((uid, gid)) = crate::targets::launch::sudo_ids()
        && let Err(e) = std::os::unix::fs::chown(path, Some(uid), Some(gid))
    {
        log::warn!("could not give {} to uid {uid}: {e}", path.display());
    }
}

/// Bytes available to unprivileged users on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs into a zeroed struct with a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn force_replaces_regular_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("old.h5");
        std::fs::write(&f, b"x").unwrap();
        assert!(prepare(&f, false).unwrap_err().contains("--force"));
        prepare(&f, true).unwrap();
        assert!(!f.exists());
        assert!(prepare(dir.path(), true).unwrap_err().contains("directory"));
        for dev in ["/dev/null", "/dev/full"] {
            let e = prepare(Path::new(dev), true).unwrap_err();
            assert!(e.contains("/dev"), "{e}");
            assert!(Path::new(dev).exists());
        }
        assert!(prepare(Path::new("/proc/self/x.h5"), true).unwrap_err().contains("/proc"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(prepare(&fifo, true).unwrap_err().contains("FIFO"));
        assert!(fifo.exists());
    }
}
