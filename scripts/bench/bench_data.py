#!/usr/bin/python3
"""Data benchmark of trainyard-train: how long `gen` takes to write a big
synthetic CSV (BGZF), and how long `fit` takes to load it (one epoch of a
softmax model, so loading dominates) at 1 and 2 ranks, from the BGZF file
and from the same data as one plain gzip stream (no random access: each
rank decompresses up to the end of its shard).  Wall times, median of
--repeat runs.

Usage: scripts/bench/bench_data.py [--rows N] [--features F] [--repeat R] [--json OUT]"""
import argparse
import gzip
import os
import shutil
import subprocess
import tempfile
import time

# the same binary, launcher, statistic and output
from bench_trainer import MPIRUN, TRAIN, emit, median


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    res = {"rows": a.rows, "features": a.features}
    with tempfile.TemporaryDirectory() as tmp:
        bgzf = os.path.join(tmp, "d.csv.gz")
        res["gen_s"] = median([timed([TRAIN, "gen", "--rows", str(a.rows), "--features",
                                      str(a.features), "--classes", "3", "--out", bgzf])
                               for _ in range(a.repeat)])
        plain_gz = os.path.join(tmp, "plain.csv.gz")
        with gzip.open(bgzf, "rb") as f, gzip.open(plain_gz, "wb", compresslevel=6) as g:
            shutil.copyfileobj(f, g, 1 << 20)
        for name, path in (("bgzf", bgzf), ("plain_gzip", plain_gz)):
            for np in (1, 2):
                cmd = MPIRUN + ["-np", str(np), TRAIN, "fit", "--train", path, "--model",
                                "softmax", "--epochs", "1", "--out", os.path.join(tmp, "m")]
                res[f"fit_1_epoch_{name}_{np}_ranks_s"] = median([timed(cmd)
                                                                  for _ in range(a.repeat)])
    emit(res, a.json)


if __name__ == "__main__":
    main()
