//! A whole BPF hash map in a few system calls: BPF_MAP_LOOKUP_BATCH (Linux
//! 5.6) hands over up to `CHUNK` entries per call, where aya 0.14's
//! iterator makes two per entry (get-next-key, then lookup): on 1000
//! threads that is 2000 system calls per sample. A kernel without batch
//! operations (or a map type without them) says so on the first call; the
//! caller then walks the map as before.
//!
//! Entries are copied out as the kernel side may be updating them, as with
//! single lookups: each value is whatever its element held when the kernel
//! copied it.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};

use aya::Ebpf;
use aya::Pod;
use aya::maps::Map;

use super::EbpfError;

/// `BPF_MAP_LOOKUP_BATCH` of `enum bpf_cmd`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// The kernel's ENOTSUPP (not in libc: a kernel-internal errno that leaks
/// to user space from some commands).
const ENOTSUPP: i32 = 524;
/// Entries asked for per call (the kernel stops earlier at a bucket's end).
const CHUNK: u32 = 1024;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Batch reads of one map: its own descriptor (a copy, so that the map may
/// also be held by a typed handle), reusable buffers, and whether the
/// kernel turned batch lookups down.
pub struct BatchReader {
    fd: OwnedFd,
    name: String,
    keys: Vec<u8>,
    values: Vec<u8>,
    unsupported: bool,
}

impl BatchReader {
    /// A reader of hash map `name` of the loaded object (before any typed
    /// handle takes it out).
    pub fn of(bpf: &Ebpf, name: &str) -> Result<Self, EbpfError> {
        let data = match bpf.map(name) {
            Some(Map::HashMap(d) | Map::PerCpuHashMap(d) | Map::LruHashMap(d)) => d,
            _ => return Err(EbpfError::Map(format!("no hash map {name}"))),
        };
        let fd = data.fd().as_fd().try_clone_to_owned().map_err(|e| EbpfError::Map(format!("{name}: {e}")))?;
        Ok(Self { fd, name: name.to_string(), keys: Vec::new(), values: Vec::new(), unsupported: false })
    }

    /// Every (key, value) of the map. `None`: the kernel has no batch
    /// lookup for it; walk the map instead.
    pub fn read<K: Pod, V: Pod>(&mut self) -> Result<Option<Vec<(K, V)>>, EbpfError> {
        let mut out = Vec::new();
        let done = self.read_raw(std::mem::size_of::<K>(), std::mem::size_of::<V>(), |k, v| {
            // SAFETY: buffers of the types' sizes the kernel filled; Pod
            // types, read unaligned.
            out.push(unsafe {
                (std::ptr::read_unaligned(k.as_ptr().cast()), std::ptr::read_unaligned(v.as_ptr().cast()))
            })
        })?;
        Ok(done.then_some(out))
    }

    /// Calls `each` with every key of a per-CPU hash map, a CPU index and
    /// that CPU's value, the `cpus` possible CPUs in order for each key,
    /// without collecting them; false as `read`'s `None`.
    pub fn each_per_cpu<K: Pod, V: Pod>(
        &mut self,
        cpus: usize,
        mut each: impl FnMut(K, usize, V),
    ) -> Result<bool, EbpfError> {
        // Each CPU's value is padded to 8 bytes.
        let stride = std::mem::size_of::<V>().next_multiple_of(8);
        self.read_raw(std::mem::size_of::<K>(), stride * cpus, |k, v| {
            // SAFETY: as in `read`.
            let key: K = unsafe { std::ptr::read_unaligned(k.as_ptr().cast()) };
            for (cpu, c) in v.chunks_exact(stride).enumerate() {
                // SAFETY: as in `read`, at each CPU's offset within the value.
                each(key, cpu, unsafe { std::ptr::read_unaligned(c.as_ptr().cast::<V>()) });
            }
        })
    }

    /// Calls `each` with the bytes of every key and value; false if the
    /// kernel has no batch lookup for the map (nothing was called).
    fn read_raw(&mut self, ks: usize, vs: usize, mut each: impl FnMut(&[u8], &[u8])) -> Result<bool, EbpfError> {
        if self.unsupported {
            return Ok(false);
        }
        let name = &self.name;
        self.keys.resize(CHUNK as usize * ks, 0);
        self.values.resize(CHUNK as usize * vs, 0);
        let fd = self.fd.as_raw_fd() as u32;
        // The kernel's position between calls: a bucket index for hash maps.
        let (mut token_in, mut token_out) = (0u64, 0u64);
        let mut first = true;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { std::ptr::addr_of!(token_in) as u64 },
                out_batch: std::ptr::addr_of_mut!(token_out) as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: CHUNK,
                map_fd: fd,
                ..Default::default()
            };
            // SAFETY: the bpf(2) system call with an attribute of the size
            // passed; the kernel writes at most `count` keys and values into
            // buffers of that many, and the position into `token_out`.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_bpf,
                    BPF_MAP_LOOKUP_BATCH,
                    std::ptr::addr_of_mut!(attr),
                    std::mem::size_of::<BatchAttr>(),
                )
            };
            let err = (r < 0).then(std::io::Error::last_os_error);
            let code = err.as_ref().and_then(std::io::Error::raw_os_error);
            match code {
                None | Some(libc::ENOENT) => {
                    let n = attr.count.min(CHUNK) as usize;
                    for (k, v) in self.keys.chunks_exact(ks).zip(self.values.chunks_exact(vs)).take(n) {
                        each(k, v);
                    }
                    if code.is_some() {
                        return Ok(true);
                    }
                }
                Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP) if first => {
                    log::debug!("no batch lookup of {name} ({err:?}): reading it entry by entry");
                    self.unsupported = true;
                    return Ok(false);
                }
                _ => return Err(EbpfError::Map(format!("batch lookup of {name}: {err:?}"))),
            }
            token_in = token_out;
            first = false;
        }
    }
}
