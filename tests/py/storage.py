"""Prints how each table of a messer file is stored, as JSON:
{table: {"compression": ..., "rows": n, "nrows_attr": n, "attrs": [...]}}.

usage: storage.py FILE
"""
import json
import sys

import h5py


def main():
    out = {}
    with h5py.File(sys.argv[1], "r") as f:
        for name, ds in f.items():
            out[name] = {
                "compression": ds.compression,
                "rows": int(ds.shape[0]),
                "nrows_attr": int(ds.attrs["NROWS"]),
                "attrs": sorted(ds.attrs.keys()),
            }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
