"""Summarizes a messer recording for `cargo xtask bench` as JSON.

usage: summarize.py FILE INTERVAL_SECONDS
"""
import json
import os
import sys

import h5py
import numpy as np


def main():
    path, interval = sys.argv[1], float(sys.argv[2])
    with h5py.File(path, "r") as f:
        t = f["messer_timeseries"][:]
    out = {"rows": int(len(t)), "bytes": os.path.getsize(path)}
    w = t["window_seconds"]
    out["cpu_s"] = float(np.nansum(t["proc_cpu_util_percent_total"] * w / 100.0))
    own = t["messer_cpu_util_percent"][1:]
    ow = w[1:]
    known = ~np.isnan(own)
    own, ow = own[known], ow[known]
    if len(own):
        out["messer_cpu_median_percent"] = float(np.median(own))
        # Over the whole run, the throttled costly reads included.
        out["messer_cpu_mean_percent"] = float(np.sum(own * ow) / np.sum(ow))
    for name in ("ebpf_flush_us", "ebpf_flush_max_cpu_us"):
        if name in t.dtype.names and np.any(~np.isnan(t[name][1:])):
            v = t[name][1:]
            out[f"{name}_median"] = float(np.nanmedian(v))
            # The samples whose flush interrupted at least one CPU.
            if np.any(v > 0):
                out[f"{name}_flushing_median"] = float(np.median(v[v > 0]))
    if "ebpf_flush_interrupts" in t.dtype.names and np.any(~np.isnan(t["ebpf_flush_interrupts"][1:])):
        out["ebpf_flush_interrupts_mean"] = float(np.nanmean(t["ebpf_flush_interrupts"][1:]))
    for name in t.dtype.names:
        if name.startswith("bpf_"):
            out[name] = float(np.nansum(t[name]))
    # Sampling punctuality: full windows (the last is partial) against the interval.
    full = w[:-1] if len(w) > 1 else w[:0]
    err_us = np.abs(full - interval) * 1e6
    if len(err_us):
        out["interval_err_us"] = {
            "p50": float(np.percentile(err_us, 50)),
            "p99": float(np.percentile(err_us, 99)),
            "max": float(err_us.max()),
            "n": int(len(err_us)),
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
