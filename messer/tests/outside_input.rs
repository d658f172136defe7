//! The readers of what the outside world writes (/proc files, tracefs
//! formats, kernel BTF) against truncated, oversized and garbage input:
//! each returns a value or an error, and never panics.

use messer::probe::ebpf::{btf::Btf, tracefs};
use messer::probe::procfs::{host, kv, parse, system};
use proptest::prelude::*;

/// Real-looking files of each kind, to cut, splice and corrupt.
const SAMPLES: &[&str] = &[
    "1234 (my (odd) prog) S 1 1234 1234 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 2 0 4321 12345678 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 7 0 0 0 0 0 0 0 0 0 0\n",
    "123456 7890 12\n",
    "Name:\tbash\nVmRSS:\t  1234 kB\nThreads:\t4\nvoluntary_ctxt_switches:\t10\n",
    "rchar: 100\nwchar: 200\nsyscr: 3\nsyscw: 4\nread_bytes: 4096\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
    "cpu  10 20 30 40 50 60 70 80 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nbtime 1700000000\n",
    "   8       0 sda 100 0 800 50 10 0 80 5 0 60 55 0 0 0 0\n",
    "Inter-|   Receive\n face |bytes packets\n  eth0: 100 2 0 0 0 0 0 0 200 3 0 0 0 0 0 0\n",
    "some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    "0.10 0.20 0.30 1/100 4242\n",
    "MemTotal: 1000 kB\nMemFree: 500 kB\nMemAvailable: 600 kB\nBuffers: 1 kB\nCached: 2 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    "name: sched_switch\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n",
    "1 2 3\n",
];

/// Every reader on `text`: results are ignored, panics fail the test.
fn read_all(text: &str) {
    let _ = parse::stat(text);
    let _ = parse::schedstat(text);
    let _ = parse::id_list(text);
    let _ = kv::parse("status", text, &["VmRSS", "Threads", "rchar", "MemTotal"]);
    let _ = kv::fields("status", text, &["VmHWM", "VmSwap", "rchar", "Pss"]);
    let _ = system::parse_cpu(text);
    let _ = system::parse_diskstats(text);
    let _ = system::parse_net_dev(text);
    let _ = system::parse_pressure(text);
    let _ = system::parse_loadavg(text);
    let _ = host::parse_btime(text);
    if let Ok(m) = kv::parse("meminfo", text, &["MemTotal", "MemFree", "MemAvailable", "SwapTotal", "SwapFree"]) {
        let _ = system::memory(&m);
    }
    let fields = tracefs::parse_format(text);
    let _ = tracefs::offset(&fields, "sched", "sched_switch", "prev_comm", 16);
}

fn cut_at_char(s: &str, at: usize) -> &str {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn truncated_files(i in 0..SAMPLES.len(), at in 0usize..400) {
        read_all(cut_at_char(SAMPLES[i], at));
    }

    #[test]
    fn corrupted_files(i in 0..SAMPLES.len(), at in 0usize..400, junk in "[ -~\\n\\t\\(\\)]{0,40}|\\PC{0,20}") {
        let s = SAMPLES[i];
        let head = cut_at_char(s, at);
        let tail = &s[head.len()..];
        let skip = cut_at_char(tail, junk.len()).len();
        read_all(&format!("{head}{junk}{}", &tail[skip..]));
    }

    #[test]
    fn garbage(text in "\\PC{0,300}") {
        read_all(&text);
    }

    #[test]
    fn huge_numbers(n in "[0-9]{15,40}", i in 0..SAMPLES.len()) {
        read_all(&SAMPLES[i].replace('1', &n));
    }

    #[test]
    fn btf_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(b) = Btf::parse(&bytes) {
            let _ = b.offset("task_struct", &["se", "sum_exec_runtime"]);
            let _ = b.tracepoint_args("sched_switch");
        }
    }

    #[test]
    fn btf_with_a_valid_header(len in 0u32..4096, str_len in 0u32..4096, body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // magic 0xeB9F, version 1, flags 0, header length 24, then type and
        // string sections whose offsets and lengths come from the test.
        let mut b = vec![0x9f, 0xeb, 1, 0];
        b.extend(24u32.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(len.to_le_bytes());
        b.extend(str_len.to_le_bytes());
        b.extend(body);
        if let Ok(btf) = Btf::parse(&b) {
            let _ = btf.offset("task_struct", &["pid"]);
            let _ = btf.tracepoint_args("sched_process_exit");
        }
    }
}

#[test]
fn the_kernel_btf_is_read() {
    // On a kernel with BTF, the real file parses and names task_struct.
    let Ok(bytes) = std::fs::read("/sys/kernel/btf/vmlinux") else {
        eprintln!("skipping the_kernel_btf_is_read: this kernel has no /sys/kernel/btf/vmlinux");
        return;
    };
    let btf = Btf::parse(&bytes).expect("kernel BTF parses");
    assert!(btf.offset("task_struct", &["pid"]).is_ok());
    // Every cut of the real file: an error or a value, no panic.
    for at in (0..bytes.len()).step_by(bytes.len() / 97 + 1).chain([1, 23, 24, 25]) {
        let _ = Btf::parse(&bytes[..at]);
    }
}
