"""Per-window and integrated CPU error of messer (ebpf and procfs, one
`--mode both` file) and of peers (pidstat, psrecord) against the workload's
exact truth, for `cargo xtask bench`. Prints JSON.

usage: accuracy.py TRUTH H5 PIDSTAT_OUT PSRECORD_LOG PSRECORD_START_MONO_S REALTIME_MINUS_MONO_S
"""
import json
import sys

import h5py
import numpy as np


def truth(path):
    a = np.loadtxt(path, dtype=np.float64, ndmin=2)
    return a[:, 0] / 1e9, a[:, 1] / 1e9  # mono seconds, cumulative CPU seconds


def gain(t, c, start, end):
    """CPU seconds the truth gained over [start, end] (interpolated); None if not covered."""
    if start < t[0] or end > t[-1]:
        return None
    return float(np.interp(end, t, c) - np.interp(start, t, c))


def score(windows, t, c):
    """windows: (start, end, cpu percent). Errors in % of one core."""
    errs, got, want = [], 0.0, 0.0
    for start, end, pct in windows:
        g = gain(t, c, start, end)
        if g is None or not np.isfinite(pct) or end <= start:
            continue
        errs.append(abs(pct - g / (end - start) * 100.0))
        got += pct / 100.0 * (end - start)
        want += g
    if not errs:
        return None
    e = np.array(errs)
    return {
        "windows": len(errs),
        "p99": float(np.percentile(e, 99)),
        "max": float(e.max()),
        "integrated_pct": (got - want) / want * 100.0 if want else float("nan"),
    }


def messer(path, table):
    with h5py.File(path, "r") as f:
        d = f[table][:]
    m, w, p = d["monotime"], d["window_seconds"], d["proc_cpu_util_percent_total"]
    # The first row's window starts at the baseline; full windows only (not the last).
    return [(m[i] - w[i], m[i], p[i]) for i in range(1, len(m) - 1)]


def pidstat(path, offset):
    rows = []
    for line in open(path):
        f = line.split()
        if len(f) >= 9 and f[0].isdigit():
            end = float(f[0]) - offset  # epoch seconds (whole) -> monotonic
            rows.append((end - 1.0, end, float(f[7])))
    return rows[1:-1]


def psrecord(path, start):
    rows, prev = [], None
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        el, cpu = float(line.split()[0]), float(line.split()[1])
        if prev is not None:
            rows.append((start + prev, start + el, cpu))
        prev = el
    return rows[1:-1]


def main():
    tpath, h5, pid_out, ps_log, ps_start, offset = sys.argv[1:7]
    t, c = truth(tpath)
    out = {
        "messer ebpf": score(messer(h5, "messer_timeseries"), t, c),
        "messer procfs": score(messer(h5, "messer_procfs_timeseries"), t, c),
        "pidstat": score(pidstat(pid_out, float(offset)), t, c),
        "psrecord": score(psrecord(ps_log, float(ps_start)), t, c),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
