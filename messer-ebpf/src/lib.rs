//! Host-side stub: `messer`'s build script depends on this crate so that cargo
//! rebuilds the BPF object when it changes. The programs are in `main.rs`.
#![no_std]
