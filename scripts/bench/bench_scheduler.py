#!/usr/bin/python3
"""Scheduler benchmark on a real local cluster (etcd, master, two workers),
with every task transition durable in etcd:

  1. 1,000 independent tasks running `true` on two workers: makespan
  2. a chain of 100 dependent tasks: ms per link
  3. one task from submit to completion: ms (master's clock, and the CLI's wall)
  4. the master's CPU time and peak RSS over the 1,000-task run

Usage: scripts/bench/bench_scheduler.py [--json OUT] (release build expected)."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration-tests"))
from conftest import Cluster  # noqa: E402


def ms(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(parts[11]) + int(parts[12])) / tick


def proc_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def pipeline(name, n, chain):
    lines = [f"name: {name}", "tasks:"]
    for i in range(n):
        lines.append(f"  - name: t{i}")
        lines.append('    command: ["true"]')
        if chain and i:
            lines.append(f"    depends_on: [t{i - 1}]")
    return "\n".join(lines) + "\n"


def run_span(c, text, name):
    run = c.submit(text, name=name + ".yaml")
    st = c.wait_run(run, timeout=120)
    assert st["state"] == "succeeded", st["state"]
    return ms(st["finished_at"]) - ms(st["created_at"]), st


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(tmp)
        try:
            c.start_etcd()
            c.start_master()
            c.start_worker("w1")
            c.start_worker("w2")
            c.wait_workers(["w1", "w2"])
            slots = sum(w["cpus"] for w in c.json("workers"))
            res = {"machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or
                               platform.machine(), "kernel": platform.release()},
                   "worker_slots": slots}
            # warm-up
            run_span(c, pipeline("warm", 20, False), "warm")

            pid = c.master.pid
            cpu0 = proc_cpu_s(pid)
            spans = [run_span(c, pipeline("wide", 1000, False), "wide")[0]
                     for _ in range(args.repeat)]
            cpu1 = proc_cpu_s(pid)
            res["wide_1000_makespan_ms"] = {"median": statistics.median(spans), "all": spans}
            res["master_cpu_s_per_1000_tasks"] = (cpu1 - cpu0) / args.repeat
            res["master_peak_rss_mib"] = proc_hwm_kib(pid) / 1024

            links = [run_span(c, pipeline("chain", 100, True), "chain")[0] / 100
                     for _ in range(args.repeat)]
            res["chain_100_ms_per_link"] = {"median": statistics.median(links), "all": links}

            one = pipeline("one", 1, False)
            path = c.write("one.yaml", one)
            master_ms, wall_ms = [], []
            for _ in range(20):
                t0 = time.monotonic()
                r = c.cli("submit", path, "--wait", "-o", "json")
                wall_ms.append((time.monotonic() - t0) * 1000)
                st = json.loads(r.stdout)
                master_ms.append(ms(st["finished_at"]) - ms(st["created_at"]))
            res["one_task_submit_to_done_ms"] = {"median": statistics.median(master_ms),
                                                 "min": min(master_ms)}
            res["one_task_cli_wall_ms"] = {"median": statistics.median(wall_ms)}
            info = c.json("info")
            res["etcd_txns"] = info["etcd_txns"]
            res["etcd_ops"] = info["etcd_ops"]
        finally:
            c.stop()
    out = json.dumps(res, indent=2)
    print(out)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
