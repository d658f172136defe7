//! The socket census (kernel side: `messer-ebpf/src/sockets.rs`): each read
//! runs the iterator over every process's open files once and counts the
//! tracked tree's TCP and UDP sockets from the records it writes.

use std::collections::HashSet;
use std::io::Read as _;

use aya::Ebpf;
use aya::programs::Iter;
use messer_common::{IPPROTO_TCP, SocketRecord, TCP_ESTABLISHED};

use super::{EbpfError, load};
use crate::probe::procfs::figures::SocketCounts;

/// The program's name in the BPF object.
pub const PROGRAM: &str = "messer_sockets";

/// Loads the iterator program (attached anew at every read).
pub fn load(bpf: &mut Ebpf, btf: &aya::Btf) -> Result<(), EbpfError> {
    let p: &mut Iter = load::program(bpf, PROGRAM)?;
    p.load("task_file", btf).map_err(EbpfError::load)
}

/// Counts records (`SocketRecord`s as the kernel side wrote them).
pub fn tally(records: &[u8]) -> SocketCounts {
    let mut seen = HashSet::new();
    let mut out = SocketCounts::default();
    for chunk in records.chunks_exact(size_of::<SocketRecord>()) {
        // SAFETY: a whole record's bytes; read unaligned.
        let r: SocketRecord = unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
        if seen.insert(r.ino) {
            out.ip_sockets += 1;
            if r.protocol == IPPROTO_TCP && r.state == TCP_ESTABLISHED {
                out.tcp_established += 1;
            }
        }
    }
    out
}

/// Runs the census: a new iterator instance read to its end.
/// `buf` keeps its capacity between reads.
pub fn count(bpf: &mut Ebpf, buf: &mut Vec<u8>) -> Result<SocketCounts, EbpfError> {
    let p: &mut Iter = load::program(bpf, PROGRAM)?;
    let id = p.attach().map_err(EbpfError::map)?;
    let link = p.take_link(id).map_err(EbpfError::map)?;
    let mut file = link.into_file().map_err(EbpfError::map)?;
    buf.clear();
    file.read_to_end(buf).map_err(EbpfError::map)?;
    if !buf.len().is_multiple_of(size_of::<SocketRecord>()) {
        return Err(EbpfError::Map(format!("the socket census returned {} bytes, not whole records", buf.len())));
    }
    Ok(tally(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64, tgid: u32, protocol: u16, state: u16) -> [u8; 16] {
        let r = SocketRecord { ino, tgid, protocol, state };
        // SAFETY: a plain-data record's bytes.
        unsafe { std::mem::transmute(r) }
    }

    #[test]
    fn counts_each_socket_once_however_many_hold_it() {
        let mut b = Vec::new();
        for r in [rec(7, 1, 6, 1), rec(7, 2, 6, 1), rec(8, 1, 6, 10), rec(9, 1, 17, 7), rec(10, 2, 6, 1)] {
            b.extend_from_slice(&r);
        }
        assert_eq!(tally(&b), SocketCounts { ip_sockets: 4, tcp_established: 2 });
        assert_eq!(tally(&[]), SocketCounts::default());
    }
}
