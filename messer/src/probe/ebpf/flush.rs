//! Runs the `messer_flush` program on one CPU: BPF_PROG_TEST_RUN with
//! BPF_F_TEST_RUN_ON_CPU (aya's `TestRun` for raw tracepoints) executes it
//! there in interrupt context, so that CPU's running thread is credited up
//! to this instant (see `messer-ebpf/src/sched.rs`).

use aya::programs::{ProgramError, RawTracePoint, RawTracePointRunOptions, TestRun};

/// The program's name in the BPF object.
pub const PROGRAM: &str = "messer_flush";

/// Runs the flush program `p` on CPU `cpu` with `epoch` as its argument 0.
pub fn run_on_cpu(p: &RawTracePoint, cpu: u32, epoch: u64) -> Result<(), ProgramError> {
    let mut opts = RawTracePointRunOptions::new();
    opts.args[0] = epoch;
    opts.cpu = Some(cpu);
    p.test_run(opts).map(|_| ())
}
