#!/usr/bin/python3
"""Trainer benchmark: trainyard-train against PyTorch on Fashion-MNIST, the
MLP 784-128-64-10, batch 256, SGD (momentum 0.9, lr 0.05), the same epochs,
one thread per process.  Reports samples/s (training time only, summed over
epochs) and test accuracy for: the trainer at 1 and 2 ranks, PyTorch at 1
process and DistributedDataParallel (gloo) at 2 processes; then the ratios
the issue sets as targets, and where the trainer's steps spent their time
(its -o json "step_us" and "step_us_by_rank": gather, grad, sum, update).
TY_BUILD_DIR, TY_FASHION_DIR and TY_TORCH_PYTHON point it elsewhere.
Installs python3-torch and libopenblas0-pthread (Debian) when missing.

Both sides use the same OpenBLAS kernels: Debian's OpenBLAS falls back to
SSE3 kernels on CPUs newer than it, the trainer corrects that itself (see
trainer/main.c), and this script sets the same OPENBLAS_CORETYPE for PyTorch.

The 2-rank scaling is also set against this machine's own ceiling: two
independent 1-rank trainings run at once (no communication), summed.

Every configuration runs once per round, back to back, for --repeat rounds;
ratios are taken within a round and their median reported, because this
kind of VM drifts by up to 2x over minutes.

Usage: scripts/bench/bench_trainer.py [--epochs N] [--repeat R] [--no-torch] [--msg]
                                      [--more-ranks 4,8] [--json OUT]"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("TY_BUILD_DIR", os.path.join(ROOT, "build", "release"))
TRAIN = os.path.join(BUILD, "trainer", "trainyard-train")
D = os.environ.get("TY_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
# the interpreter with PyTorch: Debian's python3-torch here; a lent GPU machine
# (scripts/bench/gpu_device.sh) has its own PyTorch, with MKL rather than OpenBLAS
PY = os.environ.get("TY_TORCH_PYTHON", "/usr/bin/python3")
# ranks float by default (2 vCPUs: binding helps nothing); TY_MPI_BIND=core
# pins each rank to a core of its own on bigger machines
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to",
          os.environ.get("TY_MPI_BIND", "none")]


def ensure_torch():
    try:
        subprocess.run([PY, "-c", "import torch"], check=True,
                       capture_output=True)
    except subprocess.CalledProcessError:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
                               "python3-torch", "libopenblas0-pthread"], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def coretype():
    """The kernels the trainer runs on (it re-execs with them when needed)."""
    import ctypes
    lib = ctypes.CDLL("libopenblas.so.0")
    lib.openblas_get_corename.restype = ctypes.c_char_p
    name = lib.openblas_get_corename().decode()
    if name.lower() != "prescott":
        return None
    flags = open("/proc/cpuinfo").read()
    return "SkylakeX" if " avx512f" in flags else "Haswell" if " avx2" in flags else None


def trainer_cmd(np, epochs, tmp, tag):
    args = ["fit", "--train", f"idx:{D}/train-images-idx3-ubyte.gz,{D}/train-labels-idx1-ubyte.gz",
            "--val", f"idx:{D}/t10k-images-idx3-ubyte.gz,{D}/t10k-labels-idx1-ubyte.gz",
            "--model", "mlp:128,64", "--epochs", str(epochs), "--batch", "256", "--lr", "0.05",
            "--momentum", "0.9", "--out", os.path.join(tmp, f"m{tag}.model"), "-o", "json"]
    return [TRAIN] + args if np == 1 else MPIRUN + ["-np", str(np), TRAIN] + args


def trainer_result(stdout, report, np, epochs):
    res = json.loads(stdout.strip().splitlines()[-1])
    secs = sum(float(l.split()[2]) for l in open(report) if l.startswith("metric epoch_time_s"))
    samples = 60000 // 256 * 256 * epochs
    return {"samples_per_s": samples / secs, "accuracy": res["accuracy"], "epochs": epochs,
            "processes": np, "step_us": res.get("step_us"),
            "step_us_by_rank": res.get("step_us_by_rank")}


def fresh(path):
    """A report path with nothing in it (the trainer appends to reports)."""
    if os.path.exists(path):
        os.unlink(path)
    return path


def trainer(np, epochs, tmp, shm=True):
    """shm=False: the ranks sum gradients by messages (TY_GRAD_SHM=0), as
    ranks on different nodes do, instead of through shared memory."""
    report = fresh(os.path.join(tmp, f"report-{np}"))
    env = dict(os.environ, TRAINYARD_REPORT=report)
    if not shm:
        env["TY_GRAD_SHM"] = "0"
    r = subprocess.run(trainer_cmd(np, epochs, tmp, np), capture_output=True, text=True,
                       check=True, env=env)
    return trainer_result(r.stdout, report, np, epochs)


def independent_pair(epochs, tmp):
    """Two unrelated 1-rank trainings at once: what this machine gives two
    processes with no communication at all.  Their sum is the ceiling for
    any two processes; twice the slower one is the ceiling for 2 ranks that
    step together (each step waits for the slower)."""
    procs = []
    for k in ("a", "b"):
        report = fresh(os.path.join(tmp, f"report-pair-{k}"))
        p = subprocess.Popen(trainer_cmd(1, epochs, tmp, "pair" + k), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, TRAINYARD_REPORT=report))
        procs.append((p, report))
    each = []
    for p, report in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(err)
        each.append(trainer_result(out, report, 1, epochs)["samples_per_s"])
    return {"samples_per_s_sum": sum(each), "samples_per_s_twice_slower": 2 * min(each),
            "processes": 2}


def torch_ref(np, epochs, env):
    cmd = [PY, os.path.join(ROOT, "scripts", "bench", "torch_mlp.py"),
           "--epochs", str(epochs), "--ddp", str(np)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2


def emit(res, path):
    """Prints the results as JSON, and writes them to path when given."""
    out = json.dumps(res, indent=2)
    print(out)
    if path:
        with open(path, "w") as f:
            f.write(out + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds; each runs every configuration once, back to back")
    ap.add_argument("--no-torch", action="store_true",
                    help="the trainer's own scaling only: skip the PyTorch runs")
    ap.add_argument("--msg", action="store_true",
                    help="also run 2 ranks summing by messages (TY_GRAD_SHM=0)")
    ap.add_argument("--more-ranks", default="",
                    help="also these rank counts, e.g. 4,8 (with --msg: by messages too, "
                         "where every rank updates all of the model instead of its slice)")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not a.no_torch:
        ensure_torch()
    ct = coretype()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if ct:
        env["OPENBLAS_CORETYPE"] = ct
    more = [int(n) for n in a.more_ranks.split(",") if n]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(a.repeat):
            r = {"trainer_1": trainer(1, a.epochs, tmp), "trainer_2": trainer(2, a.epochs, tmp),
                 "two_independent_1_rank": independent_pair(a.epochs, tmp)}
            if a.msg:
                r["trainer_2_msg"] = trainer(2, a.epochs, tmp, shm=False)
            for n in more:
                r[f"trainer_{n}"] = trainer(n, a.epochs, tmp)
                if a.msg:
                    r[f"trainer_{n}_msg"] = trainer(n, a.epochs, tmp, shm=False)
            if not a.no_torch:
                r["torch_1"] = torch_ref(1, a.epochs, env)
                r["torch_ddp_2"] = torch_ref(2, a.epochs, env)
            sps = {k: v.get("samples_per_s", v.get("samples_per_s_sum")) for k, v in r.items()}
            pair = r["two_independent_1_rank"]
            r["ratios"] = {"trainer2_vs_trainer1": sps["trainer_2"] / sps["trainer_1"],
                           "two_independent_vs_trainer1":
                               sps["two_independent_1_rank"] / sps["trainer_1"],
                           "twice_slower_independent_vs_trainer1":
                               pair["samples_per_s_twice_slower"] / sps["trainer_1"]}
            for k in r:
                if k.startswith("trainer_") and k not in ("trainer_1", "trainer_2"):
                    r["ratios"][k.replace("_", "", 1) + "_vs_trainer1"] = sps[k] / sps["trainer_1"]
            if not a.no_torch:
                r["ratios"]["trainer1_vs_torch1"] = sps["trainer_1"] / sps["torch_1"]
            rounds.append(r)
            print(f"round {i + 1}: " + json.dumps(r["ratios"]), file=sys.stderr)
    res = {"openblas_coretype": ct or "detected", "epochs": a.epochs, "mpi_bind": MPIRUN[-1],
           "rounds": rounds}
    trainers = [k for k in rounds[0] if k.startswith("trainer_")]
    for k in trainers + ([] if a.no_torch else ["torch_1", "torch_ddp_2"]):
        res[k] = {"samples_per_s_median": median([r[k]["samples_per_s"] for r in rounds]),
                  "accuracy": rounds[0][k]["accuracy"]}
    for k in trainers:
        if all(r[k]["step_us"] for r in rounds):  # where rank 0's steps went, median of rounds
            res[k]["step_us"] = {p: {s: median([r[k]["step_us"][p][s] for r in rounds])
                                     for s in ("mean", "median")}
                                 for p in rounds[0][k]["step_us"]}
    res["two_independent_1_rank"] = {"samples_per_s_median": median(
        [r["two_independent_1_rank"]["samples_per_s_sum"] for r in rounds])}
    # ratios within each round (configurations run minutes apart drift), then the median
    for k in rounds[0]["ratios"]:
        vals = [r["ratios"][k] for r in rounds]
        res["ratio_" + k] = {"median": median(vals), "min": min(vals), "max": max(vals)}
    if not a.no_torch:
        res["accuracy_gap_points"] = 100 * (res["trainer_1"]["accuracy"] -
                                            res["torch_1"]["accuracy"])
    emit(res, a.json)


if __name__ == "__main__":
    sys.exit(main())
