#!/usr/bin/python3
"""MPI gangs across workers against the same ranks on one worker, on a real
local cluster (etcd, a master, workers w1 and w2 with 2 CPUs at 127.0.1.1
and 127.0.1.2, which Open MPI takes for two hosts, and w3 with 4 CPUs at
127.0.1.3 for the one-worker runs):

  1. trainyard-train fit's samples/s (the last epoch's, as it reports) at 2
     and 4 ranks: across w1 and w2 (ranks_per_worker 1 and 2) and all on w3,
     alternating, several rounds;
  2. launch: from the dispatch (the task's start, master clock) to every
     rank running (each rank prints the time it starts), for a 4-rank gang
     across w1 and w2, the same 4 ranks on w3, and mpirun alone on this
     host (from its start).

Usage: scripts/bench/bench_gang.py [--rounds N] [--json OUT]
(TY_BUILD_DIR=build/release expected)."""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration-tests"))
from conftest import BUILD, Cluster  # noqa: E402

TRAIN = os.path.join(BUILD, "trainer", "trainyard-train")
STAMP = ["sh", "-c", "date +%s%N"]


def ms(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def step(name, np, spread, command, env=None):
    lines = [f"name: {name}", "tasks:", "  - name: t", "    kind: mpi", f"    np: {np}"]
    if spread:
        lines.append(f"    ranks_per_worker: {spread}")
    if env:
        lines.append("    env: {" + ", ".join(f'{k}: "{v}"' for k, v in env.items()) + "}")
    lines.append(f"    command: {json.dumps(command)}")
    return "\n".join(lines) + "\n"


def run(c, text, name):
    r = c.submit(text, name=name + ".yaml")
    st = c.wait_run(r, timeout=600)
    assert st["state"] == "succeeded", (st, c.cli("logs", r, "t").stdout[-2000:])
    return r, st["tasks"][0]


def samples_per_s(c, data, np, spread, env=None):
    cmd = (f"trainyard-train fit --train {data} --model mlp:128,64 --epochs 3 --batch 64 "
           f"--lr 0.05 --out model.bin")
    _, t = run(c, step("fit", np, spread, cmd, env), f"fit{np}{spread}")
    assert t["worker"] == ("w1" if spread else "w3"), t
    return t["metrics"]["samples_per_s"]["value"]


def launch_ms(c, spread):
    r, t = run(c, step("launch", 4, spread, STAMP), f"launch{spread}")
    stamps = [int(x) / 1e6 for x in c.cli("logs", r, "t").stdout.split() if x.isdigit()]
    assert len(stamps) == 4, stamps
    return max(stamps) - ms(t["started_at"])


def mpirun_alone_ms():
    t0 = time.time() * 1000
    out = subprocess.run(["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to",
                          "none", "-np", "4"] + STAMP, capture_output=True, text=True,
                         check=True).stdout
    return max(int(x) / 1e6 for x in out.split()) - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    res = {"rounds": args.rounds}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "d.csv")
        subprocess.run([TRAIN, "gen", "--rows", "40000", "--features", "32", "--classes", "4",
                        "--seed", "1", "--out", data], check=True, capture_output=True)
        c = Cluster(tmp)
        try:
            c.start_etcd()
            c.start_master()
            for i, (w, cpus) in enumerate((("w1", "2"), ("w2", "2"), ("w3", "4")), 1):
                c.start_worker(w, "--cpus", cpus, "--address", f"127.0.1.{i}", "--mpi-if", "lo")
            c.wait_workers(["w1", "w2", "w3"])
            sps = {k: [] for k in ("2_across", "2_one", "4_across", "4_one", "4_across_yield")}
            # (4 ranks on this 2-vCPU machine are oversubscribed; each part's
            # daemon thinks its 2 slots are 2 cores, so its ranks spin while
            # they wait: _yield tells Open MPI to yield the CPU instead)
            yield_env = {"OMPI_MCA_mpi_yield_when_idle": "1"}
            for _ in range(args.rounds):  # alternating, so drift hits both alike
                for np in (2, 4):
                    sps[f"{np}_across"].append(samples_per_s(c, data, np, np // 2))
                    sps[f"{np}_one"].append(samples_per_s(c, data, np, 0))
                sps["4_across_yield"].append(samples_per_s(c, data, 4, 2, yield_env))
            res["samples_per_s"] = {k: {"median": statistics.median(v), "all": v}
                                    for k, v in sps.items()}
            for np in (2, 4):
                ratios = [a / o for a, o in zip(sps[f"{np}_across"], sps[f"{np}_one"])]
                res[f"ratio_{np}_across_to_one"] = {"median": statistics.median(ratios),
                                                    "all": ratios}
            lt = {"gang_2_workers": [], "one_worker": [], "mpirun_alone": []}
            for _ in range(max(args.rounds, 5)):
                lt["gang_2_workers"].append(launch_ms(c, 2))
                lt["one_worker"].append(launch_ms(c, 0))
                lt["mpirun_alone"].append(mpirun_alone_ms())
            res["launch_ms"] = {k: {"median": statistics.median(v), "min": min(v), "all": v}
                                for k, v in lt.items()}
        finally:
            c.stop()
    out = json.dumps(res, indent=2)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
