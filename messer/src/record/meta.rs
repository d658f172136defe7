//! Metadata stored with every recording: the original Messer's attributes
//! plus what is needed to interpret the numbers later.

use crate::sink::hdf5::AttrValue;

/// Facts about this machine and invocation, as (name, value) attributes.
pub fn attributes(
    pid: i32,
    pid_command: &str,
    interval_s: f64,
    label: &str,
    mode: &str,
) -> Vec<(&'static str, AttrValue)> {
    let now_ns = crate::base::clock::realtime_ns();
    let s = |v: String| AttrValue::Str(v);
    // SAFETY: sysconf with valid names.
    let (ticks, page, cpus) = unsafe {
        (libc::sysconf(libc::_SC_CLK_TCK), libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_NPROCESSORS_ONLN))
    };
    let read = |p: &str| std::fs::read_to_string(p).map(|t| t.trim().to_string()).unwrap_or_default();
    vec![
        ("invocation_time_unix", AttrValue::F64(now_ns as f64 / 1e9)),
        ("invocation_time_local", s(crate::base::clock::isotime_local(now_ns))),
        ("system_hostname", s(read("/proc/sys/kernel/hostname"))),
        ("messer_pid_command", s(pid_command.to_string())),
        ("messer_pid", AttrValue::I64(i64::from(pid))),
        ("messer_sampling_interval_seconds", AttrValue::F64(interval_s)),
        ("messer_custom_label", s(label.to_string())),
        ("messer_software_version", s(env!("CARGO_PKG_VERSION").to_string())),
        ("messer_command", s(crate::redact::command_line(&std::env::args().collect::<Vec<_>>()))),
        ("messer_mode", s(mode.to_string())),
        ("messer_schema_version", AttrValue::I64(crate::sample::SCHEMA_VERSION)),
        ("system_kernel_release", s(read("/proc/sys/kernel/osrelease"))),
        ("system_boot_id", s(read("/proc/sys/kernel/random/boot_id"))),
        ("system_cpu_count", AttrValue::I64(cpus)),
        ("system_clock_ticks_per_second", AttrValue::I64(ticks)),
        ("system_page_size_bytes", AttrValue::I64(page)),
    ]
}
