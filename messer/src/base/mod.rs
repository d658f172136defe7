//! Leaf modules every layer may use and that use no other part of messer:
//! table schemas and values (`table`), the clocks (`clock`), /proc access
//! (`proc`), a fast hasher for integer-keyed maps (`hash`).

pub mod clock;
pub mod hash;
pub mod proc;
pub mod table;
