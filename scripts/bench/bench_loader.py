#!/usr/bin/python3
"""Pipeline loader speed (issue 16): `trainyard validate` as a whole process
on generated files of N tasks, each task depending on the one before and
on a task 100 back (so lookups are not all neighbours), plus one param
template per task.  Prints the median of --rounds wall times per size.

usage: scripts/bench/bench_loader.py [--build build/release] [--sizes 1000,20000,100000]
"""
import argparse
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write(path, n):
    with open(path, "w") as f:
        f.write("name: big\nparams: {msg: hello}\ntasks:\n")
        for i in range(n):
            deps = [f"t{j}" for j in (i - 1, i - 100) if j >= 0]
            f.write(f"  - name: t{i}\n    command: [echo, '{{{{ params.msg }}}} {i}']\n")
            if deps:
                f.write(f"    depends_on: [{', '.join(deps)}]\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--sizes", default="1000,20000,100000")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    cli = os.path.join(a.build, "cli", "trainyard")
    with tempfile.TemporaryDirectory() as d:
        for n in [int(x) for x in a.sizes.split(",")]:
            path = os.path.join(d, f"p{n}.yaml")
            write(path, n)
            times = []
            for _ in range(a.rounds):
                t0 = time.perf_counter()
                r = subprocess.run([cli, "validate", path], capture_output=True, text=True)
                times.append(time.perf_counter() - t0)
                assert r.returncode == 0, r.stderr
            print(f"{n:>7} tasks  {os.path.getsize(path) / 1e6:6.2f} MB  "
                  f"validate median {statistics.median(times) * 1000:7.1f} ms  "
                  f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})", flush=True)


if __name__ == "__main__":
    main()
