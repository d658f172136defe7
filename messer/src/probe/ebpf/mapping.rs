//! Shared mappings of BPF_F_MMAPABLE array maps: the loader writes values
//! the kernel side reads (`THREAD_MARKS`, `EPOCH`) with plain stores instead
//! of one `bpf(MAP_UPDATE_ELEM)` call each.

use std::os::fd::{AsFd as _, AsRawFd as _};

use super::EbpfError;

/// A shared mapping of a BPF_F_MMAPABLE array map, unmapped on drop.
pub struct Mapping {
    base: *mut u8,
    len: usize,
}

impl Mapping {
    /// Maps array map `name` of the loaded object, `entries` x `value`
    /// bytes (a page at least: the kernel maps whole pages).
    pub fn of(data: &aya::maps::MapData, name: &str, value: usize) -> Result<Self, EbpfError> {
        let entries = data.info().map_err(EbpfError::load)?.max_entries() as usize;
        let len = (entries * value).max(1);
        // SAFETY: a shared mapping of a BPF_F_MMAPABLE array map's fd, of
        // the map's size; the kernel checks both.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(EbpfError::Load(format!("mapping {name}: {}", std::io::Error::last_os_error())));
        }
        Ok(Self { base: base.cast(), len })
    }

    /// Stores `v` at byte `at` (aligned for `T`), a volatile store: the
    /// kernel side reads it concurrently. Nothing beyond the mapping.
    pub fn store<T: Copy>(&self, at: usize, v: T) {
        if at.checked_add(size_of::<T>()).is_some_and(|end| end <= self.len) && at.is_multiple_of(align_of::<T>()) {
            // SAFETY: within the mapping and aligned (checked above).
            unsafe { std::ptr::write_volatile(self.base.add(at).cast::<T>(), v) }
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `of`, unmapped once.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}
