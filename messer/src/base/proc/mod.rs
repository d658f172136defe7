//! Access to a /proc tree (the live one, or a fake one in tests) and the
//! parsers of its per-process files.

pub mod parse;
pub mod root;
#[cfg(test)]
pub mod testutil;

pub use root::{ProcRoot, ReadError};
