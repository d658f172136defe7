//! Runs the `messer_flush` program on one CPU: BPF_PROG_TEST_RUN with
//! BPF_F_TEST_RUN_ON_CPU executes it there in interrupt context, so that CPU's
//! running thread is credited up to this instant (see `messer-ebpf/src/sched.rs`).

use std::io;
use std::os::fd::RawFd;

const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_F_TEST_RUN_ON_CPU: u32 = 1;

/// The `test` member of `union bpf_attr` (linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// Runs raw-tracepoint program `prog_fd` on CPU `cpu` with `epoch` as its
/// argument 0.
pub fn run_on_cpu(prog_fd: RawFd, cpu: u32, epoch: u64) -> io::Result<()> {
    let args = [epoch];
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        flags: BPF_F_TEST_RUN_ON_CPU,
        cpu,
        ctx_size_in: std::mem::size_of_val(&args) as u32,
        ctx_in: args.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: bpf(2) with a correctly sized, zero-initialised attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>() as u32,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}
