"""Reads a table of a messer HDF5 file with h5py and with pandas, checks that
both agree, and prints the columns asked for as JSON: {column: [values]}.

usage: read_table.py FILE TABLE COLUMN...
"""
import json
import math
import sys

import h5py
import pandas as pd


def main():
    path, table, columns = sys.argv[1], sys.argv[2], sys.argv[3:]
    with h5py.File(path, "r") as f:
        data = f[table][:]
        attrs = {k: (v.decode() if isinstance(v, bytes) else v.item() if hasattr(v, "item") else v)
                 for k, v in f[table].attrs.items()}
    df = pd.read_hdf(path, table)
    assert len(df) == len(data), (len(df), len(data))
    out = {"_attrs": attrs, "_rows": len(df)}
    for c in columns:
        if data.dtype[c].kind == "S":
            a = [x.decode() for x in data[c]]
            b = [x.decode() if isinstance(x, bytes) else x for x in df[c]]
            assert a == b, c
            out[c] = a
            continue
        a = [float(x) for x in data[c]]
        b = [float(x) for x in df[c]]
        assert all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b)), c
        out[c] = [None if math.isnan(x) else x for x in a]
    iso = df["isotime_local"].iloc[0] if len(df) and "isotime_local" in df else b""
    out["_isotime_len"] = len(iso)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
