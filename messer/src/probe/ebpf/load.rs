//! Loading: tracepoint offsets into the configuration, map sizes, attaching
//! every program, and seeding the maps with the processes that already exist.

use std::path::Path;

use aya::maps::{HashMap as BpfHashMap, MapData, MapError};
use aya::programs::{BtfTracePoint, RawTracePoint, RawTracePointRunOptions, TestRun, TracePoint};
use aya::{Ebpf, EbpfLoader};
use messer_common::{
    CGROUP_SYMBOL, CONFIG_SYMBOL, CgroupTarget, Config, CpuOffset, FILES_SYMBOL, FileOffsets, PERCPU_MAX_CPUS,
    THREAD_FAULTS_VALID, THREAD_WAIT_VALID, ThreadState, Tracked,
};

use super::btf::{self, Btf};
use super::handle::program;
use super::{EbpfError, EbpfOptions, chain, marks, tracefs};
use crate::probe::procfs::ProcRoot;
use crate::targets::cgroup::CgroupDir;

/// Set (to anything) in the environment, the exit program ignores the
/// tracepoint's `group_dead` argument and uses `signal->live` as on kernels
/// before 6.16, so that the tests run that path on a new kernel too.
pub const NO_GROUP_DEAD_ENV: &str = "MESSER_TEST_EXIT_WITHOUT_GROUP_DEAD";

/// The BPF object built from `messer-ebpf` by build.rs.
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/messer"));

/// The syscalls whose exits each IO program counts.
pub const IO_FAMILIES: [(&str, &[&str]); 4] = [
    ("sys_exit_read_family", &["read", "pread64", "readv", "preadv", "preadv2"]),
    ("sys_exit_write_family", &["write", "pwrite64", "writev", "pwritev", "pwritev2"]),
    ("sys_exit_recv_family", &["recvfrom", "recvmsg"]),
    ("sys_exit_send_family", &["sendto", "sendmsg"]),
];

/// The scheduler's program and how many arguments its tracepoint must
/// pass. A BTF tracepoint: the kernel's own arguments, typed, so that task
/// fields are direct loads rather than helper calls (this program runs at
/// every context switch of the machine).
pub const SWITCH_PROGRAM: (&str, usize) = ("sched_switch", 4);

/// The program run once on each CPU at load to find its per-CPU offset
/// (`cpu_offsets`).
pub const CPU_OFFSET_PROGRAM: &str = "messer_cpu_offset";

/// Task programs, the raw tracepoints each is attached to, and how many
/// arguments those must pass. Raw tracepoints hand the program the
/// kernel's own arguments directly; classic (perf) tracepoints were seen to
/// drop sched_switch events when the perf buffer's recursion guard was
/// taken, which loses a whole stint.
pub const TASK_PROGRAMS: [(&str, &[&str], usize); 3] = [
    ("task_newtask", &["task_newtask"], 2),
    ("sched_process_exec", &["sched_process_exec"], 1),
    ("sched_process_exit", &["sched_process_exit"], 1),
];

/// BPF_NOEXIST (insert only if the key is absent) as map inserts take it.
const BPF_NOEXIST: u64 = aya_obj::generated::BPF_NOEXIST as u64;

/// Offset of `field` in every one of `events` (which must agree).
fn common_offset(root: &Path, category: &str, events: &[&str], field: &str, size: u32) -> Result<u32, EbpfError> {
    let mut found = None;
    for ev in events {
        let f = tracefs::fields(root, category, ev)?;
        let off = tracefs::offset(&f, category, ev, field, size)?;
        match found {
            Some(o) if o != off => {
                return Err(EbpfError::Tracefs(format!(
                    "field {field} of {category}/{ev} is at offset {off}, not {o} as in {category}/{}",
                    events[0]
                )));
            }
            _ => found = Some(off),
        }
    }
    found.ok_or_else(|| EbpfError::Tracefs(format!("no {category} tracepoints given")))
}

/// The syscall exit tracepoints this kernel has, of those we count.
fn present_syscalls(root: &Path, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|n| format!("sys_exit_{n}"))
        .filter(|ev| root.join("events/syscalls").join(ev).join("format").is_file())
        .collect()
}

/// Builds the load-time configuration; the second value says whether
/// syscall tracepoints are there (IO counting).
fn config(root: &Path, btf: &Btf, opts: &EbpfOptions) -> Result<(Config, bool), EbpfError> {
    let (switch, switch_args) = SWITCH_PROGRAM;
    let programs = TASK_PROGRAMS.iter().map(|(_, events, n)| (*events, *n));
    for (events, min_args) in std::iter::once((&[switch][..], switch_args)).chain(programs) {
        for ev in events {
            let n = btf.tracepoint_args(ev)?;
            if n < min_args {
                return Err(EbpfError::Tracefs(format!(
                    "raw tracepoint {ev} passes {n} arguments, messer needs {min_args}: ebpf mode needs Linux 5.18 \
                     or newer (sched_switch's prev_state argument); use --mode procfs"
                )));
            }
        }
    }
    let syscalls: Vec<String> = IO_FAMILIES.iter().flat_map(|(_, names)| present_syscalls(root, names)).collect();
    let events: Vec<&str> = syscalls.iter().map(String::as_str).collect();
    let sys_exit_ret = if events.is_empty() { 0 } else { common_offset(root, "syscalls", &events, "ret", 8)? };
    let task_sum_exec_runtime = btf.offset("task_struct", &["se", "sum_exec_runtime"])?;
    log::debug!("task_struct.se.sum_exec_runtime at byte {task_sum_exec_runtime}");
    // Run-queue wait needs the kernel's sched_info (CONFIG_SCHED_INFO).
    let sched_info = btf
        .offset("task_struct", &["sched_info", "run_delay"])
        .and_then(|d| Ok((d, btf.offset("task_struct", &["sched_info", "pcount"])?)));
    let (task_run_delay, task_pcount) = match sched_info {
        Ok(offsets) => offsets,
        Err(e) => {
            log::warn!("this kernel keeps no run-queue delay per task ({e}): run-queue wait will be missing");
            (0, 0)
        }
    };
    // The run queue's clocks (steal and interrupt time), for the flush.
    let rq = btf.offset("task_struct", &["se", "cfs_rq"]).and_then(|t| {
        Ok((t, btf.offset("cfs_rq", &["rq"])?, btf.offset("rq", &["clock"])?, btf.offset("rq", &["clock_task"])?))
    });
    let (task_cfs_rq, cfs_rq_rq, rq_clock, rq_clock_task) = rq.unwrap_or_else(|e| {
        log::info!(
            "the run queue of a task is not known here ({e}): a running thread's time at a sample includes time              stolen by the hypervisor or spent in interrupts until its switch-out, which settles it"
        );
        (0, 0, 0, 0)
    });
    Ok((
        Config {
            rq_clocks: u32::from(rq_clock_task != 0),
            task_cfs_rq,
            cfs_rq_rq,
            rq_clock,
            rq_clock_task,
            task_pid: btf.offset("task_struct", &["pid"])?,
            task_sum_exec_runtime,
            sys_exit_ret,
            exit_has_group_dead: u32::from(
                btf.tracepoint_args("sched_process_exit")? >= 2 && std::env::var_os(NO_GROUP_DEAD_ENV).is_none(),
            ),
            task_signal: btf.offset("task_struct", &["signal"])?,
            signal_live: btf.offset("signal_struct", &["live"])?,
            follow_children: u32::from(opts.follow_children),
            task_tgid: btf.offset("task_struct", &["tgid"])?,
            task_real_parent: btf.offset("task_struct", &["real_parent"])?,
            task_exit_code: btf.offset("task_struct", &["exit_code"])?,
            task_run_delay,
            task_pcount,
            has_sched_info: u32::from(task_run_delay != 0),
            task_utime: btf.offset("task_struct", &["utime"])?,
            task_stime: btf.offset("task_struct", &["stime"])?,
            task_min_flt: btf.offset("task_struct", &["min_flt"])?,
            task_maj_flt: btf.offset("task_struct", &["maj_flt"])?,
            match_comm: u32::from(opts.comm.is_some()),
            oom_victim_pid: oom_victim_pid(root),
            runq_hist: u32::from(opts.runq_latency),
            threads: u32::from(opts.threads),
            task_comm: btf.offset("task_struct", &["comm"])?,
            comm: opts.comm.unwrap_or_default(),
        },
        !events.is_empty(),
    ))
}

/// The program told of moves between cgroups, its raw tracepoint's name
/// and how many arguments it must pass.
pub const CGROUP_PROGRAM: (&str, usize) = ("cgroup_attach_task", 4);

/// The target cgroup with this kernel's offsets from task to cgroup and
/// from a cgroup to its ancestors' ids.
fn cgroup_target(btf: &Btf, dir: &CgroupDir) -> Result<CgroupTarget, EbpfError> {
    let (name, min_args) = CGROUP_PROGRAM;
    let n = btf.tracepoint_args(name)?;
    if n < min_args {
        return Err(EbpfError::Tracefs(format!(
            "raw tracepoint {name} passes {n} arguments, messer needs {min_args} for --cgroup; use --mode procfs"
        )));
    }
    // 6.1 keeps the ancestors' ids in the cgroup; 6.2 on, pointers.
    let (cgrp_ancestors, ancestors_are_ids) = match btf.offset("cgroup", &["ancestor_ids"]) {
        Ok(off) => (off, 1),
        Err(_) => (btf.offset("cgroup", &["ancestors"])?, 0),
    };
    Ok(CgroupTarget {
        enabled: 1,
        level: dir.level,
        id: dir.id,
        task_cgroups: btf.offset("task_struct", &["cgroups"])?,
        cset_dfl_cgrp: btf.offset("css_set", &["dfl_cgrp"])?,
        cgrp_level: btf.offset("cgroup", &["level"])?,
        cgrp_ancestors,
        ancestors_are_ids,
        cgrp_kn: btf.offset("cgroup", &["kn"])?,
        kn_id: btf.offset("kernfs_node", &["id"])?,
        signal_thread_head: btf.offset("signal_struct", &["thread_head"])?,
        task_thread_node: btf.offset("task_struct", &["thread_node"])?,
        _pad: 0,
    })
}

/// The OOM killer's tracepoint, whose `pid` field names its victim.
pub const OOM_TRACEPOINT: (&str, &str) = ("oom", "mark_victim");

/// Offset of `pid` in the OOM killer's tracepoint; 0 where the kernel has
/// none (then OOM kills are not told apart from other SIGKILLs).
fn oom_victim_pid(root: &Path) -> u32 {
    let (category, ev) = OOM_TRACEPOINT;
    match common_offset(root, category, &[ev], "pid", 4) {
        Ok(off) => off,
        Err(e) => {
            log::warn!("no OOM kill tracepoint here ({e}): oom_kill events and proc_oom_kills are missing");
            0
        }
    }
}

/// The member of `pt_regs` that holds a syscall's first argument when the
/// syscall exits (x86-64 passes it in rdi, which the syscall leaves alone;
/// arm64 overwrites x0 with the return value and keeps the argument in
/// orig_x0); None on other architectures.
const REGS_ARG0: Option<&str> = if cfg!(target_arch = "x86_64") {
    Some("di")
} else if cfg!(target_arch = "aarch64") {
    Some("orig_x0")
} else {
    None
};

/// The process iterator's memory offsets: `task_struct.mm`, `mm_struct.hiwater_rss`,
/// where the value of the mm's counter 0 lies and how far apart the
/// counters are. Up to 6.1 the counters are `atomic_long_t count[]` in
/// `struct mm_rss_stat`. From 6.2 they are `percpu_counter`s, whose `count`
/// lacks what each CPU holds back (up to a batch of pages per counter and
/// CPU): the iterator adds each CPU's part, as status does from 6.16; the
/// CPUs' per-CPU offsets it needs are found at load (`cpu_offsets`), on
/// x86-64 only (`this_cpu_off`), where the run queue of a task is known
/// (`rq_known`).
fn memory_offsets(btf: &Btf, rq_known: bool, f: &mut FileOffsets) -> Result<(), btf::BtfError> {
    let rss_stat = btf.offset("mm_struct", &["rss_stat"])?;
    (f.task_mm, f.mm_hiwater_rss) = (btf.offset("task_struct", &["mm"])?, btf.offset("mm_struct", &["hiwater_rss"])?);
    if btf.has("mm_rss_stat") {
        (f.mm_counter0, f.mm_counter_stride) = (rss_stat + btf.offset("mm_rss_stat", &["count"])?, 8);
        f.memory = 1;
        return Ok(());
    }
    // What stat reads (each counter's `count`) is known from here on.
    let count = i64::from(btf.offset("percpu_counter", &["count"])?);
    f.mm_counter0 = rss_stat + count as u32;
    f.mm_counter_stride = btf.size("percpu_counter")?;
    let unsupported = |why: &str| Err(btf::BtfError(format!("the mm's RSS counters are per-CPU here and {why}")));
    if !cfg!(target_arch = "x86_64") {
        return unsupported("their per-CPU parts are found on x86-64 only");
    }
    if !rq_known {
        return unsupported("a task's run queue is not known (for finding each CPU's per-CPU offset)");
    }
    let cpus = aya::util::nr_cpus().map_err(|(what, e)| btf::BtfError(format!("{what}: {e}")))?;
    if cpus > PERCPU_MAX_CPUS as usize {
        return unsupported(&format!("this machine has {cpus} CPU ids, more than the {PERCPU_MAX_CPUS} summed"));
    }
    let percpu = |var| btf.section_var(".data..percpu", var).map(i64::from);
    let rq = percpu("runqueues")?;
    let distance = |to: i64| {
        i32::try_from(to - rq).map(|d| d as u32).map_err(|_| btf::BtfError("per-CPU section beyond 2 GiB".into()))
    };
    f.rq_to_this_cpu_off = distance(percpu("this_cpu_off")?)?;
    f.rq_to_cpu_number = distance(percpu("cpu_number")?)?;
    let from_count = |member| -> Result<u32, btf::BtfError> {
        Ok((i64::from(btf.offset("percpu_counter", &[member])?) - count) as i32 as u32)
    };
    f.pc_lock_from_count = from_count("lock")?;
    f.pc_counters_from_count = from_count("counters")?;
    f.nr_cpus = cpus as u32;
    f.mm_percpu = 1;
    f.memory = 1;
    Ok(())
}

/// The process iterator's offsets for what a main thread's stat prints
/// (`ProcessRecord`); the mm's counters and `task_struct.mm` come from
/// `memory_offsets`, which must have found them.
fn stat_offsets(btf: &Btf, f: &mut FileOffsets) -> Result<(), btf::BtfError> {
    if f.mm_counter_stride == 0 {
        return Err(btf::BtfError("the mm's RSS counters are not known".into()));
    }
    f.mm_total_vm = btf.offset("mm_struct", &["total_vm"])?;
    f.task_flags = btf.offset("task_struct", &["flags"])?;
    f.task_start_boottime = btf.offset("task_struct", &["start_boottime"])?;
    f.task_gtime = btf.offset("task_struct", &["gtime"])?;
    f.task_delays = btf.offset("task_struct", &["delays"])?;
    f.delays_blkio = btf.offset("task_delay_info", &["blkio_delay"])?;
    f.signal_nr_threads = btf.offset("signal_struct", &["nr_threads"])?;
    f.signal_cutime = btf.offset("signal_struct", &["cutime"])?;
    f.signal_cstime = btf.offset("signal_struct", &["cstime"])?;
    f.stat = 1;
    Ok(())
}

/// The process iterator's offsets for its sums over threads (IO counters
/// and guest time; `FileOffsets::sums`); the stat offsets come first.
fn sum_offsets(btf: &Btf, f: &mut FileOffsets) -> Result<(), btf::BtfError> {
    if f.stat == 0 {
        return Err(btf::BtfError("the stat offsets are not known".into()));
    }
    f.signal_thread_head = btf.offset("signal_struct", &["thread_head"])?;
    f.task_thread_node = btf.offset("task_struct", &["thread_node"])?;
    f.signal_stats_seq = btf.offset("signal_struct", &["stats_lock", "seqcount", "seqcount", "sequence"])?;
    f.signal_ioac = btf.offset("signal_struct", &["ioac"])?;
    f.signal_gtime = btf.offset("signal_struct", &["gtime"])?;
    f.task_ioac = btf.offset("task_struct", &["ioac"])?;
    for (at, field) in f.ioac.iter_mut().zip(crate::probe::procfs::process::IO_FIELDS) {
        *at = btf.offset("task_io_accounting", &[field])?;
    }
    f.sums = 1;
    Ok(())
}

/// Finds each online CPU's per-CPU offset for the process iterator (it runs
/// `messer_cpu_offset` on each) and checks the findings: every online CPU
/// seen, its `cpu_number` its own id, and one per-CPU section start implied
/// by all of them (a run queue's address is its CPU's offset plus the
/// section's start plus `runqueues`' place in it).
fn cpu_offsets(bpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let p: &mut RawTracePoint = program(bpf, CPU_OFFSET_PROGRAM).map_err(|e| e.to_string())?;
    p.load().map_err(|e| chain(&e))?;
    let online = aya::util::online_cpus().map_err(|(what, e)| format!("{what}: {e}"))?;
    for &cpu in &online {
        let mut opts = RawTracePointRunOptions::new();
        opts.cpu = Some(cpu);
        p.test_run(opts).map_err(|e| format!("CPU {cpu}: {}", chain(&e)))?;
    }
    let rq_at = btf.section_var(".data..percpu", "runqueues").map_err(|e| e.to_string())?;
    let map = bpf.map("CPU_OFFSETS").ok_or("no map CPU_OFFSETS")?;
    let offsets: aya::maps::Array<_, CpuOffset> = aya::maps::Array::try_from(map).map_err(|e| e.to_string())?;
    let mut start = None;
    for &cpu in &online {
        let c = offsets.get(&cpu, 0).map_err(|e| e.to_string())?;
        if c.seen == 0 || c.cpu_number != cpu || c.offset == 0 {
            return Err(format!("CPU {cpu}: its per-CPU offset was not found ({c:?})"));
        }
        let s = c.rq.wrapping_sub(c.offset).wrapping_sub(u64::from(rq_at));
        if *start.get_or_insert(s) != s {
            return Err(format!("CPU {cpu}'s findings imply another per-CPU section ({c:?})"));
        }
    }
    Ok(())
}

/// Offsets for the socket census and the socket test of the syscall IO
/// programs. The census needs the file-to-socket part (`socket_part`);
/// `classify_io` is set when the task-to-file part is known too. A kernel
/// without one of them gets zeros there (and a warning).
fn file_offsets(btf: &Btf, rq_known: bool) -> FileOffsets {
    let socket_part = || -> Result<FileOffsets, btf::BtfError> {
        let mut f = FileOffsets {
            file_inode: btf.offset("file", &["f_inode"])?,
            file_private: btf.offset("file", &["private_data"])?,
            inode_mode: btf.offset("inode", &["i_mode"])?,
            inode_ino: btf.offset("inode", &["i_ino"])?,
            socket_sk: btf.offset("socket", &["sk"])?,
            sk_family: btf.offset("sock", &["__sk_common", "skc_family"])?,
            sk_state: btf.offset("sock", &["__sk_common", "skc_state"])?,
            sk_protocol: btf.offset("sock", &["sk_protocol"])?,
            task_state: btf.offset("task_struct", &["__state"])?,
            task_exit_state: btf.offset("task_struct", &["exit_state"])?,
            task_group_leader: btf.offset("task_struct", &["group_leader"])?,
            fdt_open_fds: btf.offset("fdtable", &["open_fds"])?,
            fdt_fd: btf.offset("fdtable", &["fd"])?,
            census: 1,
            ..FileOffsets::default()
        };
        file_table(btf, &mut f)?;
        Ok(f)
    };
    let mut f = match socket_part() {
        Ok(f) => f,
        Err(e) => {
            log::warn!(
                "this kernel's socket or task layout is not known ({e}): socket counts and thread states come \
                 from /proc"
            );
            return FileOffsets::default();
        }
    };
    let nofile = || -> Result<(u32, u32), btf::BtfError> {
        let rlim = btf.offset("signal_struct", &["rlim"])?;
        let at = btf.size("rlimit")? * libc::RLIMIT_NOFILE + btf.offset("rlimit", &["rlim_cur"])?;
        Ok((btf.offset("task_struct", &["signal"])?, rlim + at))
    };
    match nofile() {
        Ok((signal, at)) => (f.nofile, f.task_signal, f.signal_nofile) = (1, signal, at),
        Err(e) => log::info!("descriptor limits come from prlimit here ({e})"),
    }
    let mut m = f;
    match memory_offsets(btf, rq_known, &mut m) {
        Ok(()) => f = m,
        Err(e) => {
            log::info!("memory figures come from /proc/<pid>/status here ({e})");
            // What stat reads of the mm may still be known.
            (f.task_mm, f.mm_counter0, f.mm_counter_stride) = (m.task_mm, m.mm_counter0, m.mm_counter_stride);
        }
    }
    let mut m = f;
    match stat_offsets(btf, &mut m) {
        Ok(()) => f = m,
        Err(e) => log::info!("each process's stat is read from /proc here ({e})"),
    }
    let mut m = f;
    match sum_offsets(btf, &mut m) {
        Ok(()) => f = m,
        Err(e) => log::info!("each process's IO counters are read from /proc here ({e})"),
    }
    let mut fds = || -> Result<(), btf::BtfError> {
        file_table(btf, &mut f)?;
        f.fdt_open_fds = btf.offset("fdtable", &["open_fds"])?;
        Ok(())
    };
    match fds() {
        Ok(()) => f.fds = 1,
        Err(e) => log::info!("each process's descriptors are counted from /proc here ({e})"),
    }
    let mut task_part = || -> Result<(), btf::BtfError> {
        let arg0 =
            REGS_ARG0.ok_or_else(|| btf::BtfError("no syscall argument register on this architecture".into()))?;
        f.regs_arg0 = btf.offset("pt_regs", &[arg0])?;
        file_table(btf, &mut f)?;
        f.fdt_fd = btf.offset("fdtable", &["fd"])?;
        Ok(())
    };
    match task_part() {
        Ok(()) => f.classify_io = 1,
        Err(e) => log::warn!(
            "descriptors cannot be told apart here ({e}): with --io-syscalls, read/write on sockets count as disk \
             (ebpf_io_unclassified counts them)"
        ),
    }
    f
}

/// The way from a task to its file table, which the descriptor count and
/// the syscall classifier share: `task_struct.files`, `files_struct.fdt`,
/// `fdtable.max_fds`.
fn file_table(btf: &Btf, f: &mut FileOffsets) -> Result<(), btf::BtfError> {
    f.task_files = btf.offset("task_struct", &["files"])?;
    f.files_fdt = btf.offset("files_struct", &["fdt"])?;
    f.fdt_max_fds = btf.offset("fdtable", &["max_fds"])?;
    Ok(())
}

/// Raises RLIMIT_MEMLOCK for kernels that still charge BPF maps to it.
fn raise_memlock() {
    let rlim = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        log::debug!("could not raise RLIMIT_MEMLOCK: {}", std::io::Error::last_os_error());
    }
}

fn attach_raw(bpf: &mut Ebpf, prog: &str, events: &[&str]) -> Result<(), EbpfError> {
    let p: &mut RawTracePoint = program(bpf, prog)?;
    p.load().map_err(EbpfError::load)?;
    for ev in events {
        p.attach(ev).map_err(EbpfError::load)?;
    }
    Ok(())
}

fn attach(bpf: &mut Ebpf, prog: &str, category: &str, events: &[&str]) -> Result<(), EbpfError> {
    let p: &mut TracePoint = program(bpf, prog)?;
    p.load().map_err(EbpfError::load)?;
    for ev in events {
        p.attach(category, ev).map_err(EbpfError::load)?;
    }
    Ok(())
}

/// The loaded, attached programs; `io` says whether IO is counted.
pub struct Loaded {
    pub bpf: Ebpf,
    pub io: bool,
    /// The kernel keeps run-queue delay per task (sched_info).
    pub runq: bool,
    /// The census programs are loaded.
    pub census: bool,
    /// OOM kills are told (the OOM killer's tracepoint is attached).
    pub oom: bool,
    /// The process iterator is loaded and gives whole memory counters
    /// (`memory`) and each process's stat (`stat`).
    pub memory: bool,
    pub stat: bool,
}

/// Loads the object, tracks `targets` and attaches everything.
pub fn load(targets: &[i32], opts: &EbpfOptions, proc: &ProcRoot) -> Result<Loaded, EbpfError> {
    raise_memlock();
    let root = tracefs::root()?;
    let btf = Btf::from_kernel()?;
    let (cfg, io_available) = config(&root, &btf, opts)?;
    let files = file_offsets(&btf, cfg.rq_clocks != 0);
    let cgroup = match &opts.cgroup {
        Some(c) => cgroup_target(&btf, c)?,
        None => CgroupTarget::default(),
    };
    let io = io_available && opts.count_io;
    let mut bpf = EbpfLoader::new()
        .override_global(CONFIG_SYMBOL, &cfg, true)
        .override_global(FILES_SYMBOL, &files, true)
        .override_global(CGROUP_SYMBOL, &cgroup, true)
        .map_max_entries("TRACKED", opts.max_processes)
        .map_max_entries("COUNTERS", opts.max_processes)
        .map_max_entries("THREADS", opts.max_threads)
        .map_max_entries(marks::MAP, marks::chunks(proc))
        .load(BPF_OBJECT)
        .map_err(EbpfError::load)?;
    {
        let mut tracked = tracked_map(&mut bpf)?;
        for &t in targets {
            tracked.insert(t as u32, Tracked::default(), 0).map_err(EbpfError::load)?;
        }
    }
    let kernel_btf = aya::Btf::from_sys_fs().map_err(EbpfError::load)?;
    let switch: &mut BtfTracePoint = program(&mut bpf, SWITCH_PROGRAM.0)?;
    switch.load(SWITCH_PROGRAM.0, &kernel_btf).map_err(EbpfError::load)?;
    switch.attach().map_err(EbpfError::load)?;
    for (prog, events, _) in TASK_PROGRAMS {
        attach_raw(&mut bpf, prog, events)?;
    }
    if cgroup.enabled != 0 {
        attach_raw(&mut bpf, CGROUP_PROGRAM.0, &[CGROUP_PROGRAM.0])?;
    }
    let oom = cfg.oom_victim_pid != 0;
    if oom {
        attach(&mut bpf, "oom_mark_victim", OOM_TRACEPOINT.0, &[OOM_TRACEPOINT.1])?;
    }
    if io {
        for (prog, names) in IO_FAMILIES {
            let events = present_syscalls(&root, names);
            let events: Vec<&str> = events.iter().map(String::as_str).collect();
            attach(&mut bpf, prog, "syscalls", &events)?;
        }
    } else if !io_available {
        log::warn!("this kernel has no syscall tracepoints: syscall IO columns are left out");
    }
    // Without the census the recording goes on, its socket counts missing.
    let census = files.census != 0
        && opts.reads.sockets
        && super::census::load(&mut bpf, &kernel_btf)
            .map_err(|e| {
                log::warn!("the census does not load on this kernel ({e}): sockets and thread states come from /proc")
            })
            .is_ok();
    // Without it, /proc/<pid>/task/<pid>/stat and /proc/<pid>/status as
    // before.
    let iterator = (files.memory != 0 || files.stat != 0)
        && super::census::load_processes(&mut bpf, &kernel_btf)
            .map_err(|e| log::info!("the process iterator does not load here ({e}): stat and status are read"))
            .is_ok();
    let memory = iterator
        && files.memory != 0
        && (if files.mm_percpu != 0 { cpu_offsets(&mut bpf, &btf) } else { Ok(()) })
            .map_err(|e| log::info!("memory figures come from /proc/<pid>/status here ({e})"))
            .is_ok();
    let stat = iterator && files.stat != 0;
    // A cgroup's members are all targets; its children are its members.
    let follow = opts.follow_children && opts.cgroup.is_none();
    for &t in targets {
        seed(&mut bpf, proc, t, follow)?;
    }
    Ok(Loaded { bpf, io, runq: cfg.has_sched_info != 0, census, oom, memory, stat })
}

/// Starts tracking `pid` (and its tree) in a running recording.
pub fn add_root(bpf: &mut Ebpf, proc: &ProcRoot, pid: i32, follow_children: bool) -> Result<(), EbpfError> {
    insert_new(&mut tracked_map(bpf)?, pid as u32, Tracked::default(), "process");
    seed(bpf, proc, pid, follow_children)
}

/// Seeds the threads of process `pid`, which the kernel side has just
/// added to the tracked set (it entered the target cgroup).
pub fn seed_threads(bpf: &mut Ebpf, proc: &ProcRoot, pid: i32) -> Result<(), EbpfError> {
    seed(bpf, proc, pid, false)
}

fn tracked_map(bpf: &mut Ebpf) -> Result<BpfHashMap<&mut MapData, u32, Tracked>, EbpfError> {
    let map = bpf.map_mut("TRACKED").ok_or_else(|| EbpfError::Load("no map TRACKED".into()))?;
    BpfHashMap::try_from(map).map_err(EbpfError::load)
}

/// Inserts `key` unless present; a full map is logged (the kernel side
/// counts its own failed inserts). True if the map holds `key` now.
fn insert_new<V: aya::Pod>(map: &mut BpfHashMap<&mut MapData, u32, V>, key: u32, value: V, what: &str) -> bool {
    match map.insert(key, value, BPF_NOEXIST) {
        Ok(()) => true,
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::EEXIST) => true,
        Err(e) => {
            log::warn!("could not track existing {what} {key}: {e}");
            false
        }
    }
}

/// Adds the target's existing descendants and all their threads. Runs after
/// the programs are attached, so anything forked from then on is added by
/// the kernel; walked twice to catch forks by a parent not yet inserted.
fn seed(bpf: &mut Ebpf, proc: &ProcRoot, target: i32, follow_children: bool) -> Result<(), EbpfError> {
    let marks = marks::Marks::map(bpf)?;
    for _ in 0..2 {
        let pids = if follow_children { crate::probe::procfs::tree::descendants(proc, target) } else { vec![target] };
        {
            let mut tracked = tracked_map(bpf)?;
            for &pid in pids.iter().skip(1) {
                let parent = proc.stat(pid).map(|s| s.ppid as u32).unwrap_or(0);
                insert_new(&mut tracked, pid as u32, Tracked { parent_tgid: parent, flags: 0 }, "child");
            }
        }
        let map = bpf.map_mut("THREADS").ok_or_else(|| EbpfError::Load("no map THREADS".into()))?;
        let mut threads: BpfHashMap<&mut MapData, u32, ThreadState> =
            BpfHashMap::try_from(map).map_err(EbpfError::load)?;
        for &pid in &pids {
            for tid in proc.tasks(pid).unwrap_or_default() {
                // Its run-queue wait is known from now on (schedstat's
                // run_delay is exact at any read: the kernel adds a wait
                // when it ends); its on-CPU baseline is taken at its first
                // switch-out or flush, since schedstat's run time lags.
                let mut t = match proc.task_schedstat(pid, tid) {
                    Ok(s) => ThreadState {
                        tgid: pid as u32,
                        flags: THREAD_WAIT_VALID,
                        run_delay_ns: s.run_delay_ns,
                        pcount: s.pcount,
                        ..ThreadState::default()
                    },
                    Err(_) => ThreadState { tgid: pid as u32, ..ThreadState::default() },
                };
                // Its page faults count from now (the thread's own stat
                // holds its own min_flt/maj_flt, exact at any read).
                if let Ok(s) = proc.task_stat(pid, tid) {
                    (t.min_flt, t.maj_flt) = (s.minflt, s.majflt);
                    t.flags |= THREAD_FAULTS_VALID;
                }
                if insert_new(&mut threads, tid as u32, t, "thread") {
                    marks.set(tid as u32);
                }
            }
        }
    }
    Ok(())
}
