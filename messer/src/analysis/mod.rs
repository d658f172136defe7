//! Reading recordings back: `messer inspect` and `messer export`.

pub mod compare;
pub mod export;
pub mod inspect;
pub mod plot;
pub mod read;
