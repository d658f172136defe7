//! Reading recordings back: `messer inspect` and `messer export`.

pub mod export;
pub mod inspect;
pub mod read;
