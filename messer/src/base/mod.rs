//! Leaf modules every layer may use and that use no other part of messer:
//! table schemas and values (`table`), the clocks (`clock`), /proc access
//! (`proc`).

pub mod clock;
pub mod proc;
pub mod table;
