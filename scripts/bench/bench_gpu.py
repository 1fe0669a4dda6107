#!/usr/bin/python3
"""GPU benchmark: trainyard-train --device cuda against PyTorch on the same
GPU, Fashion-MNIST MLP 784-128-64-10, batch 256, SGD momentum 0.9, lr 0.05.
First trains 2 epochs on the CPU and on the GPU and compares the losses.
Reports samples/s over epochs 2..N (the first warms up) and test accuracy
for: the trainer at 1 rank, at 2 ranks sharing the GPU(s) (the host
gradient-sum path), at 1 rank without CUDA graphs (TY_CUDA_GRAPHS=0), PyTorch eager and
PyTorch with its step captured in a CUDA graph; then the ratio the issue
targets (trainer / PyTorch graph, at least 1.0).  The trainer at 1 rank and
PyTorch with a graph run REPEAT times each, alternating; the ratio is of
their medians.

Meant for a lent GPU machine: scripts/bench/gpu_device.sh runs it there.
Usage: bench_gpu.py [--train BIN] [--data DIR] [--epochs N] [--repeat N]
       [--json OUT]"""
import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUNS = itertools.count()
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def trainer(binary, data, np, epochs, tmp, graphs=True):
    report = os.path.join(tmp, f"report-{next(RUNS)}")  # one per run: lines are appended
    tr = f"idx:{data}/train-images-idx3-ubyte.gz,{data}/train-labels-idx1-ubyte.gz"
    te = f"idx:{data}/t10k-images-idx3-ubyte.gz,{data}/t10k-labels-idx1-ubyte.gz"
    cmd = MPIRUN + ["-np", str(np), binary, "fit", "--train", tr, "--val", te, "--model",
                    "mlp:128,64", "--epochs", str(epochs), "--batch", "256", "--lr", "0.05",
                    "--momentum", "0.9", "--device", "cuda", "--out",
                    os.path.join(tmp, f"m{np}.model"), "-o", "json"]
    env = dict(os.environ, TRAINYARD_REPORT=report, TY_CUDA_GRAPHS="1" if graphs else "0")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    res = json.loads(r.stdout.strip().splitlines()[-1])
    times = [float(l.split()[2]) for l in open(report) if l.startswith("metric epoch_time_s")]
    timed = times[1:] or times
    samples = 60000 // 256 * 256 * len(timed)
    return {"samples_per_s": samples / sum(timed), "accuracy": res["accuracy"],
            "epochs": epochs, "ranks": np, "epoch_times_s": times}


def cpu_vs_cuda(binary, data, tmp):
    """The same 2 epochs on the CPU and the GPU: the losses should agree to
    float noise (the same batches in the same order)."""
    tr = f"idx:{data}/train-images-idx3-ubyte.gz,{data}/train-labels-idx1-ubyte.gz"
    out = {}
    for dev in ("cpu", "cuda"):
        cmd = MPIRUN + ["-np", "1", binary, "fit", "--train", tr, "--model", "mlp:128,64",
                        "--epochs", "2", "--batch", "256", "--lr", "0.05", "--device", dev,
                        "--seed", "3", "--out", os.path.join(tmp, f"c-{dev}.model"), "-o", "json"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            return {"error": r.stderr[-2000:]}
        out[dev] = json.loads(r.stdout.strip().splitlines()[-1])["loss"]
    out["relative_difference"] = abs(out["cuda"] - out["cpu"]) / out["cpu"]
    return out


def torch_gpu(data, epochs, graph):
    cmd = [sys.executable, os.path.join(HERE, "torch_mlp_gpu.py"), "--data", data,
           "--epochs", str(epochs)] + (["--graph"] if graph else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return {"error": r.stderr[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default=os.path.join(ROOT, "build", "release", "trainer",
                                                    "trainyard-train"))
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    res = {}

    def save():  # after every measurement: a device call cut short keeps what ran
        if a.json:
            with open(a.json, "w") as f:
                f.write(json.dumps(res, indent=2) + "\n")

    steps = [("cpu_vs_cuda_loss", lambda tmp: cpu_vs_cuda(a.train, a.data, tmp))]
    for i in range(a.repeat):
        steps += [(f"trainer_cuda_1#{i}", lambda tmp: trainer(a.train, a.data, 1, a.epochs, tmp)),
                  (f"torch_graph#{i}", lambda tmp: torch_gpu(a.data, a.epochs, True))]
    steps += [("trainer_cuda_2", lambda tmp: trainer(a.train, a.data, 2, a.epochs, tmp)),
             ("trainer_cuda_1_no_graph",
              lambda tmp: trainer(a.train, a.data, 1, 3, tmp, graphs=False)),
             ("torch_eager", lambda tmp: torch_gpu(a.data, min(a.epochs, 3), False))]
    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in steps:
            print(f"bench_gpu: {name} ...", file=sys.stderr, flush=True)
            try:
                res[name] = fn(tmp)
            except subprocess.TimeoutExpired as e:
                res[name] = {"error": f"timed out after {e.timeout}s"}
            print(f"bench_gpu: {name}: {json.dumps(res[name])[:300]}", file=sys.stderr,
                  flush=True)
            save()
    for name in ("trainer_cuda_1", "torch_graph"):
        runs = [r for r in (res[f"{name}#{i}"] for i in range(a.repeat)) if "samples_per_s" in r]
        if runs:
            res[name] = {k: statistics.median(r[k] for r in runs)
                         for k in ("samples_per_s", "accuracy")}
            res[name]["runs"] = len(runs)
    t1, tg = res.get("trainer_cuda_1", {}), res.get("torch_graph", {})
    if "samples_per_s" in t1 and "samples_per_s" in tg:
        res["ratio_trainer_vs_torch_graph"] = t1["samples_per_s"] / tg["samples_per_s"]
        res["accuracy_gap_points"] = 100 * (t1["accuracy"] - tg["accuracy"])
    save()
    print(json.dumps(res, indent=2))

if __name__ == "__main__":
    sys.exit(main())
