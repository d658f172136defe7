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
/// exist yet (unless `force`, which removes it). Returns a one-line reason.
pub fn prepare(path: &Path, force: bool) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(format!("output directory {} does not exist; create it or choose another --output", dir.display()));
    }
    if path.exists() {
        if !force {
            return Err(format!("output file {} exists; choose another --output or pass --force", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot replace {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The invoking user's uid and gid under sudo (SUDO_UID, SUDO_GID).
pub fn sudo_ids() -> Option<(u32, u32)> {
    let id = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    Some((id("SUDO_UID")?, id("SUDO_GID")?))
}

/// Under sudo, gives the file to the invoking user.
pub fn chown_to_invoker(path: &Path) {
    if let Some((uid, gid)) = sudo_ids()
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
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
