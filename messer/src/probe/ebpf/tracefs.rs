//! Tracepoint field offsets from tracefs `format` files (they differ between
//! kernels), and mounting tracefs where it is missing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::EbpfError;

/// Where tracefs may be mounted, in the order we look.
const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs root; mounts it at /sys/kernel/tracing if no mount exists.
pub fn root() -> Result<PathBuf, EbpfError> {
    for c in CANDIDATES {
        if Path::new(c).join("events").is_dir() {
            return Ok(PathBuf::from(c));
        }
    }
    let target = CANDIDATES[0];
    let src = c"tracefs";
    let dst = std::ffi::CString::new(target).map_err(|_| EbpfError::Tracefs("bad path".into()))?;
    // SAFETY: mount(2) with NUL-terminated strings and no data.
    let rc = unsafe { libc::mount(src.as_ptr(), dst.as_ptr(), src.as_ptr(), 0, std::ptr::null()) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
            return Err(EbpfError::NoPermission(format!("tracefs at {target} is not accessible: {e}")));
        }
        return Err(EbpfError::Tracefs(format!(
            "tracefs is not mounted and mounting it at {target} failed ({e}); mount it with \
             `mount -t tracefs nodev {target}`"
        )));
    }
    log::info!("mounted tracefs at {target}");
    Ok(PathBuf::from(target))
}

/// A field of a tracepoint record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
}

/// The fields of tracepoint `category/name`.
pub fn fields(root: &Path, category: &str, name: &str) -> Result<HashMap<String, Field>, EbpfError> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        EbpfError::Tracefs(format!(
            "cannot read {} ({e}): this kernel lacks tracepoint {category}/{name}",
            path.display()
        ))
    })?;
    Ok(parse_format(&text))
}

/// Parses the `field:` lines of a tracefs `format` file.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        let Some(decl) = line.strip_prefix("field:") else {
            continue;
        };
        let mut parts = decl.split(';').map(str::trim);
        let (Some(decl), Some(off), Some(size)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        // "char prev_comm[16]" -> prev_comm; "__data_loc char[] parent_comm" -> parent_comm
        let Some(name) = decl.split_whitespace().last().map(|n| n.split('[').next().unwrap_or(n)) else {
            continue;
        };
        let num = |s: &str, key: &str| s.strip_prefix(key).and_then(|v| v.trim().parse::<u32>().ok());
        if let (Some(offset), Some(size)) = (num(off, "offset:"), num(size, "size:")) {
            out.insert(name.to_string(), Field { offset, size });
        }
    }
    out
}

/// The offset of field `field` of `category/name`, checking its size.
pub fn offset(
    fields: &HashMap<String, Field>,
    category: &str,
    name: &str,
    field: &str,
    size: u32,
) -> Result<u32, EbpfError> {
    match fields.get(field) {
        Some(f) if f.size == size => Ok(f.offset),
        Some(f) => Err(EbpfError::Tracefs(format!(
            "tracepoint {category}/{name} field {field} has size {} (expected {size}); this kernel is not supported",
            f.size
        ))),
        None => Err(EbpfError::Tracefs(format!(
            "tracepoint {category}/{name} has no field {field}; this kernel is not supported"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORK: &str = "name: sched_process_fork\nID: 366\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
\tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
\tfield:char child_comm[16];\toffset:16;\tsize:16;\tsigned:0;\n\
\tfield:pid_t child_pid;\toffset:32;\tsize:4;\tsigned:1;\n\nprint fmt: \"comm=%s\"\n";

    #[test]
    fn parses_plain_array_and_data_loc_fields() {
        let f = parse_format(FORK);
        assert_eq!(f["parent_comm"], Field { offset: 8, size: 4 });
        assert_eq!(f["child_comm"], Field { offset: 16, size: 16 });
        assert_eq!(f["child_pid"], Field { offset: 32, size: 4 });
        assert_eq!(offset(&f, "sched", "sched_process_fork", "child_pid", 4).unwrap(), 32);
        assert!(offset(&f, "sched", "sched_process_fork", "child_pid", 8).is_err());
        assert!(offset(&f, "sched", "sched_process_fork", "nope", 4).is_err());
    }

    #[test]
    fn garbage_gives_no_fields() {
        assert!(parse_format("field:int x;\toffset:zz;\tsize:4;").is_empty());
        assert!(parse_format("").is_empty());
    }
}
