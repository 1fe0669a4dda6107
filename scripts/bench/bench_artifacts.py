#!/usr/bin/python3
"""Artifact store figures (issue 17) on a real local cluster (etcd, master,
one worker; the store and the worker's directory on the same disk), each
beside its physical limit measured in the same run:

  1. upload of a SIZE file (default 1 GiB) from a task's output to the
     master's store: from the attempt's start (its command only links the
     file into place) to the task's end, which covers hashing, the
     chunked transfer, the master's digest check, fsync and rename;
     against `cp` + `sync` of the same file on the same disk.  The file's
     first byte changes each round, so no round is answered "stored
     already".
  2. download of it with `trainyard get` (+ sync) against `cp` + `sync`.
  3. master and worker peak RSS above their idle size during 1 and 2
     (sampled every 50 ms).
  4. 100 tasks with one 1 KiB output each against the same 100 without
     outputs: the time added per task, beside one fsync of a 1 KiB file.
     (--worker-cpus N runs N of them at once, so that several end
     together and their outputs share the master's durable writes.)

usage: scripts/bench/bench_artifacts.py [--size-mib 1024] [--rounds 3] [--worker-cpus N] [--json OUT]
(release build expected)"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "integration-tests"))
from conftest import Cluster, CLI_BIN  # noqa: E402


def ms(ts):
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Sampler:
    """Peak RSS of some processes while it runs."""

    def __init__(self, pids):
        self.pids, self.peak, self.stop_ = pids, {p: 0 for p in pids}, False
        self.t = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop_:
            for p in self.pids:
                self.peak[p] = max(self.peak[p], rss_kib(p))
            time.sleep(0.05)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop_ = True
        self.t.join()


def timed(cmd):
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, shell=isinstance(cmd, str))
    return time.monotonic() - t0


def fsync_ms(d, n=50):
    out = []
    for i in range(n):
        p = os.path.join(d, f"f{i}")
        t0 = time.monotonic()
        with open(p, "wb") as f:
            f.write(b"x" * 1024)
            f.flush()
            os.fsync(f.fileno())
        out.append((time.monotonic() - t0) * 1000)
        os.unlink(p)
    return statistics.median(out)


def wide(name, n, outputs):
    lines = [f"name: {name}", "tasks:"]
    for i in range(n):
        lines.append(f"  - name: t{i}")
        if outputs:
            lines.append("    command: [sh, -c, \"head -c 1024 /dev/urandom > o.bin\"]")
            lines.append("    outputs: [o.bin]")
        else:
            lines.append("    command: [sh, -c, \"head -c 1024 /dev/urandom > o.bin\"]")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--worker-cpus", type=int, default=0,
                    help="the worker's --cpus (default: what it probes), so that more "
                         "small-output tasks end at once and share a durable write")
    ap.add_argument("--json")
    a = ap.parse_args()
    size = a.size_mib << 20
    res = {"size_bytes": size, "rounds": a.rounds, "worker_cpus": a.worker_cpus or os.cpu_count()}
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        c = Cluster(tmp)
        try:
            c.start_etcd()
            c.start_master()
            c.start_worker("w1", *(["--cpus", str(a.worker_cpus)] if a.worker_cpus else []))
            c.wait_workers(["w1"])
            src = os.path.join(tmp, "src.bin")
            subprocess.run(["head", "-c", str(size), "/dev/urandom"], check=True,
                           stdout=open(src, "wb"))
            import hashlib
            t0 = time.monotonic()
            with open(src, "rb") as f:  # the same libcrypto as the worker and master
                h = hashlib.sha256()
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            res["sha256_mib_s"] = size / 1048576 / (time.monotonic() - t0)
            mpid, wpid = c.master.pid, c.workers["w1"].pid
            idle = {mpid: rss_kib(mpid), wpid: rss_kib(wpid)}
            up, down, cp = [], [], []
            peak = {mpid: 0, wpid: 0}
            for r in range(a.rounds):
                with open(src, "r+b") as f:  # new content: never "stored already"
                    f.write(bytes([r + 1]))
                dst = os.path.join(tmp, "cp.bin")
                cp.append(timed(f"cp {src} {dst} && sync {dst}"))
                os.unlink(dst)
                with Sampler([mpid, wpid]) as s:
                    run = c.submit(f"name: up\ntasks:\n  - name: t\n"
                                   f"    command: [ln, {src}, out.bin]\n"
                                   f"    outputs: [out.bin]\n", name="up.yaml")
                    st = c.wait_run(run, timeout=600)
                    assert st["state"] == "succeeded", st
                    t = st["tasks"][0]
                    up.append((ms(t["finished_at"]) - ms(t["started_at"])) / 1000)
                    got = os.path.join(tmp, "got.bin")
                    t0 = time.monotonic()
                    subprocess.run([CLI_BIN, "--master", c.client_ep, "--timeout", "600", "get",
                                    run, "t/out.bin", "-o", got], check=True,
                                   stdout=subprocess.DEVNULL)
                    subprocess.run(["sync", got], check=True)
                    down.append(time.monotonic() - t0)
                    os.unlink(got)
                for p in peak:
                    peak[p] = max(peak[p], s.peak[p])
            mib = size / 1048576
            res["cp_sync_s"] = cp
            res["upload_s"] = up
            res["download_s"] = down
            res["cp_sync_mib_s"] = mib / statistics.median(cp)
            res["upload_mib_s"] = mib / statistics.median(up)
            res["download_mib_s"] = mib / statistics.median(down)
            # this VM's page-cache writes vary several-fold from minute to
            # minute: the ratios are taken round by round, cp right before
            res["upload_vs_cp_sync"] = statistics.median(c_ / u for c_, u in zip(cp, up))
            res["download_vs_cp_sync"] = statistics.median(c_ / d for c_, d in zip(cp, down))
            res["master_rss_idle_mib"] = idle[mpid] / 1024
            res["master_rss_peak_above_idle_mib"] = (peak[mpid] - idle[mpid]) / 1024
            res["worker_rss_idle_mib"] = idle[wpid] / 1024
            res["worker_rss_peak_above_idle_mib"] = (peak[wpid] - idle[wpid]) / 1024
            os.unlink(src)

            spans = {True: [], False: []}
            for r in range(a.rounds):
                for outs in (False, True):
                    run = c.submit(wide(f"w{int(outs)}", 100, outs), name="w.yaml")
                    st = c.wait_run(run, timeout=600)
                    assert st["state"] == "succeeded", st["state"]
                    spans[outs].append(ms(st["finished_at"]) - ms(st["created_at"]))
            res["wide_100_ms_without_outputs"] = spans[False]
            res["wide_100_ms_with_1kib_outputs"] = spans[True]
            res["added_ms_per_output"] = (statistics.median(spans[True]) -
                                          statistics.median(spans[False])) / 100
            res["fsync_1kib_ms"] = fsync_ms(tmp)
        finally:
            c.stop()
    out = json.dumps(res, indent=2)
    print(out)
    if a.json:
        with open(a.json, "w") as f:
            f.write(out + "\n")


if __name__ == "__main__":
    main()
