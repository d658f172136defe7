"""Checks that a CSV export of a table equals the table read by pandas.

usage: compare_export.py FILE.h5 TABLE FILE.csv
"""
import sys

import numpy as np
import pandas as pd


def main():
    h5, table, csv = sys.argv[1:4]
    a = pd.read_hdf(h5, table)
    b = pd.read_csv(csv)
    assert list(a.columns) == list(b.columns), (list(a.columns), list(b.columns))
    assert len(a) == len(b), (len(a), len(b))
    for c in a.columns:
        x, y = a[c], b[c]
        if x.dtype.kind in "fi":
            assert np.allclose(x.astype(float), y.astype(float), equal_nan=True, rtol=1e-12, atol=0), c
        else:
            xs = [v.decode() if isinstance(v, bytes) else v for v in x]
            ys = ["" if isinstance(v, float) and np.isnan(v) else str(v) for v in y]
            assert xs == ys, c
    print("ok", len(a))


if __name__ == "__main__":
    main()
