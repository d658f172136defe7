//! messer's BPF programs: per-process accounting for a tracked process tree.
//!
//! One module per probe: `sched` (on-CPU time, run-queue wait, context
//! switches, the in-flight flush), `task` (process and thread creation and
//! exit), `cgroup` (membership by cgroup: moves in and out), `io` (read/write/send/receive syscalls), `census` (the tree's open
//! TCP and UDP sockets and its threads' states, by iterators). Maps and load-time settings live in
//! `maps`.
#![no_std]
#![no_main]
// `asm!` for BPF: the locked add that orders `claim`'s store before its load.
#![feature(asm_experimental_arch)]

mod census;
mod cgroup;
mod io;
mod maps;
mod sched;
mod task;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects programs with reachable panics; this is never called.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
