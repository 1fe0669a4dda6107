#!/usr/bin/python3
"""History benchmark: the master's memory and latency must not grow with
the runs it has finished.  A real local cluster (etcd, a release-built
master with its default retention, two workers) runs batches of 1,000
`true` tasks; after 0, 10,000 and 100,000 finished tasks it measures:

  - one task from `trainyard submit --wait` to its exit, as the wall time of
    the CLI process (median of 10) and by the master's clock;
  - the master's RSS now and its peak (VmHWM);
  - etcd's database size (it is compacted by the master).

Usage: scripts/bench/bench_history.py [--tasks 100000] [--json OUT]"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration-tests"))
sys.path.insert(0, HERE)
from conftest import Cluster  # noqa: E402
from bench_scheduler import ms, pipeline  # noqa: E402


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def etcd_db_bytes(c):
    req = urllib.request.Request(c.etcd_url + "/v3/maintenance/status", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return int(json.load(r)["dbSize"])


def point(c, one_path, finished):
    wall, master = [], []
    for _ in range(10):
        t0 = time.monotonic()
        st = json.loads(c.cli("submit", one_path, "--wait", "-o", "json").stdout)
        wall.append((time.monotonic() - t0) * 1000)
        master.append(ms(st["finished_at"]) - ms(st["created_at"]))
    pid = c.master.pid
    res = {"finished_tasks": finished,
           "submit_wait_wall_ms": statistics.median(wall),
           "submit_to_done_master_ms": statistics.median(master),
           "master_rss_mib": rss_kib(pid, "VmRSS") / 1024,
           "master_peak_rss_mib": rss_kib(pid, "VmHWM") / 1024,
           "etcd_db_mib": etcd_db_bytes(c) / 2**20,
           "runs_in_memory": c.json("info")["runs_in_memory"]}
    print(json.dumps(res), flush=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=100000)
    ap.add_argument("--json")
    args = ap.parse_args()
    marks = [m for m in (0, 10000, 100000) if m <= args.tasks] or [0]
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(tmp)
        try:
            c.start_etcd()
            c.start_master()
            c.start_worker("w1")
            c.start_worker("w2")
            c.wait_workers(["w1", "w2"])
            one = c.write("one.yaml", pipeline("one", 1, False))
            batch = c.write("batch.yaml", pipeline("batch", 1000, False))
            points, finished = [], 0
            for mark in marks:
                while finished < mark:
                    run = c.cli("submit", batch).stdout.strip()
                    while True:
                        st = c.json("runs", "--limit", "5")
                        state = next((r["state"] for r in st if r["run_id"] == run), "running")
                        if state not in ("pending", "running"):
                            break
                        time.sleep(0.25)
                    assert state == "succeeded", state
                    finished += 1000
                points.append(point(c, one, finished))
        finally:
            c.stop()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(points, f, indent=2)


if __name__ == "__main__":
    main()
