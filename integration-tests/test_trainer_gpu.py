"""trainyard-train --device cuda: on a machine without a GPU it is refused
clearly on every rank (nothing hangs, no model is written); with a GPU it
trains what the CPU trains (1 and 2 ranks) and reaches the Fashion-MNIST
accuracy bar; through the cluster, a worker finds its GPU and an MPI step
trains on it."""
import json
import os
import re
import subprocess

import pytest

from test_trainer import FASHION, TRAIN, fit_json, run


def has_gpu():
    try:
        r = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
        return r.returncode == 0 and "GPU" in r.stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


GPU = has_gpu()
pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")


@pytest.mark.skipif(GPU, reason="a GPU is present: the GPU tests run instead")
def test_device_cuda_without_a_gpu_is_refused_on_every_rank(tmp_path):
    data = str(tmp_path / "d.csv")
    run("gen", "--rows", "500", "--features", "4", "--classes", "2", "--seed", "1", "--out", data)
    out = tmp_path / "m.model"
    r = run("fit", "--train", data, "--model", "mlp:8", "--epochs", "1", "--device", "cuda",
            "--out", str(out), np=2, timeout=120, check=False)
    assert r.returncode != 0
    for rank in (0, 1):
        line = [ln for ln in r.stderr.splitlines() if f"rank {rank}: --device cuda" in ln]
        assert line, r.stderr
        assert "no usable GPU" in line[0] or "built without CUDA" in line[0], line
    assert not out.exists()


@pytest.mark.skipif(not GPU, reason="no GPU on this machine")
def test_cuda_trains_like_the_cpu(tmp_path):
    data = str(tmp_path / "d.csv")
    run("gen", "--rows", "20000", "--features", "8", "--classes", "3", "--seed", "7",
        "--out", data)
    common = ["--train", data, "--val-split", "0.2", "--model", "mlp:64,32", "--epochs", "6",
              "--lr", "0.05", "--seed", "3"]
    cpu = fit_json(*common, "--out", str(tmp_path / "cpu.model"))
    gpu = fit_json(*common, "--device", "cuda", "--out", str(tmp_path / "gpu.model"))
    gpu2 = fit_json(*common, "--device", "cuda", "--out", str(tmp_path / "gpu2.model"), np=2)
    for g in (gpu, gpu2):  # the same batches in the same order: float noise only
        assert abs(g["loss"] - cpu["loss"]) < 0.05 * cpu["loss"] + 1e-3, (cpu, g)
        assert abs(g["accuracy"] - cpu["accuracy"]) < 0.02, (cpu, g)
    ev = json.loads(run("eval", "--model", str(tmp_path / "gpu.model"), "--data", data,
                        "-o", "json").stdout)
    assert ev["accuracy"] > 0.85


@pytest.mark.skipif(not GPU or not os.path.exists(FASHION), reason="no GPU or no dataset")
def test_cuda_fashion_mnist_mlp_reaches_84_percent(tmp_path):
    tr = f"idx:{FASHION}/train-images-idx3-ubyte.gz,{FASHION}/train-labels-idx1-ubyte.gz"
    te = f"idx:{FASHION}/t10k-images-idx3-ubyte.gz,{FASHION}/t10k-labels-idx1-ubyte.gz"
    res = fit_json("--train", tr, "--val", te, "--model", "mlp:128,64", "--epochs", "10",
                   "--batch", "256", "--lr", "0.05", "--device", "cuda",
                   "--out", str(tmp_path / "f.model"))
    assert res["accuracy"] >= 0.84, res


@pytest.mark.skipif(not GPU, reason="no GPU on this machine")
def test_ranks_sharing_one_gpu_are_warned_once(tmp_path):
    """Two ranks on a machine's one GPU take turns on it: the trainer says so
    once, naming the GPU by the UUID nvidia-smi shows.  Ranks on GPUs of
    their own (two ranks where there are two GPUs, else one rank) are not
    warned."""
    uuids = re.findall(r"UUID: (GPU-[0-9a-f-]+)",
                       subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                      text=True).stdout)
    data = str(tmp_path / "d.csv")
    run("gen", "--rows", "2000", "--features", "4", "--classes", "2", "--seed", "1", "--out", data)
    args = ["fit", "--train", data, "--model", "mlp:8", "--epochs", "1", "--device", "cuda"]
    one = run(*args, "--out", str(tmp_path / "one.model"), np=min(len(uuids), 2))
    assert "share a GPU" not in one.stderr, one.stderr
    os.environ["CUDA_VISIBLE_DEVICES"], saved = uuids[0], os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        two = run(*args, "--out", str(tmp_path / "two.model"), np=2)
    finally:
        if saved is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    warned = [ln for ln in two.stderr.splitlines() if "share a GPU" in ln]
    assert len(warned) == 1, two.stderr
    assert f"2 of the 2 ranks on this node share a GPU ({uuids[0]})" in warned[0], warned


@pytest.mark.skipif(not GPU or not os.path.exists(FASHION), reason="no GPU or no dataset")
def test_a_gpu_step_through_the_cluster(cluster):
    """A worker counts its GPUs through NVML (no --gpus given), and a
    `kind: mpi` step asking for one gets one in CUDA_VISIBLE_DEVICES and
    trains Fashion-MNIST on it, its metrics reported through the cluster."""
    listed = re.findall(r"^GPU (\d+): (.+?) \(UUID", subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True).stdout, re.M)
    cluster.start_master()
    cluster.start_worker("g1", "--cpus", "2")
    cluster.wait_workers(["g1"])
    [w] = [w for w in cluster.json("workers") if w["id"] == "g1"]
    assert w["gpus"] == len(listed), w
    tr = f"idx:{FASHION}/train-images-idx3-ubyte.gz,{FASHION}/train-labels-idx1-ubyte.gz"
    te = f"idx:{FASHION}/t10k-images-idx3-ubyte.gz,{FASHION}/t10k-labels-idx1-ubyte.gz"
    fit = (f"trainyard-train fit --device cuda --train {tr} --val {te} --model mlp:128,64 "
           "--epochs 2 --batch 256 --lr 0.05 --momentum 0.9 --out f.model")
    run_id = cluster.submit(f"""
name: gpufit
tasks:
  - name: train
    kind: mpi
    np: 1
    resources: {{gpus: 1, cpus: 1}}
    command: ["sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES; exec {fit}"]
""")
    st = cluster.wait_run(run_id, timeout=180)
    logs = cluster.cli("logs", run_id, "train").stdout
    assert st["state"] == "succeeded", logs
    given = re.search(r"^gpus=(\S+)$", logs, re.M)
    assert given and given.group(1) in {i for i, _ in listed}, logs
    name = dict(listed)[given.group(1)]
    assert f"rank 0 trains on {name}" in logs, logs
    t = st["tasks"][0]
    assert t["metrics"]["accuracy"]["step"] == 2 and t["metrics"]["accuracy"]["value"] > 0.8
    assert t["progress_text"] == "epoch 2/2"
