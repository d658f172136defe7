//! A fast hasher for maps keyed by small integers (pids, thread ids, their
//! start times, paths below /proc), looked up for every process at every
//! sample: std's SipHash costs more than the lookup itself there (1.5 % of
//! messer's CPU on 1000 processes at 0.1 s). The keys come from the kernel,
//! not from someone choosing them to collide, so resistance to hash
//! flooding is not needed. The mixing is FxHash's (rustc's): a rotate, an
//! xor and a multiply per word.

use std::hash::{BuildHasherDefault, Hasher};

/// FxHash's multiplier (64-bit).
const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// The hasher; build maps with [`FastMap`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(u64::from(i as u32));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // The product's high bits are its best mixed; hashbrown picks a
        // bucket by the low ones (rustc-hash 2 does the same).
        self.0.rotate_left(26)
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_apart() {
        let mut m: FastMap<(i32, u64), u32> = FastMap::default();
        for pid in 0..2000 {
            m.insert((pid, 7), pid as u32);
            m.insert((pid, 8), pid as u32 + 1);
        }
        assert_eq!(m.len(), 4000);
        assert_eq!(m[&(1999, 8)], 2000);
        let h = |b: &[u8]| {
            let mut s = FastHasher::default();
            s.write(b);
            s.finish()
        };
        // Bytes that differ only in length hash apart.
        assert_ne!(h(b"12/io"), h(b"12/io\0"));
        assert_ne!(h(b"12/stat"), h(b"13/stat"));
    }
}
