"""MPI steps through the cluster (`kind: mpi`): a worker runs the ranks
under mpirun, reports their metrics, kills every rank when one dies, the
step is cancelled or times out, ends what a crashed worker left running,
resumes a retried step from its checkpoint, and gives each rank its GPU;
and examples/pipelines/fashion.yaml, the demo's pipeline, runs as it is."""
import glob
import hashlib
import os
import re
import signal

import pytest

from conftest import ROOT, pids_matching, wait_until
from test_trainer import FASHION, TRAIN, run

pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")


def one_worker_and_data(cluster, tmp_path, rows):
    """A master, one worker with 2 CPUs, and a generated data set's path."""
    data = str(tmp_path / "d.csv")
    run("gen", "--rows", str(rows), "--features", "8", "--classes", "2", "--seed", "9",
        "--out", data)
    one_worker(cluster)
    return data


def one_worker(cluster):
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "2")
    cluster.wait_workers(["w1"])


def test_mpi_step_through_the_cluster(cluster, tmp_path):
    data = one_worker_and_data(cluster, tmp_path, 8000)
    run_id = cluster.submit(f"""
name: mpifit
tasks:
  - name: train
    kind: mpi
    np: 2
    command: >-
      trainyard-train fit --train {data} --val-split 0.2 --model mlp:32
      --epochs 4 --lr 0.05 --out model.bin
""")
    st = cluster.wait_run(run_id, timeout=120)
    assert st["state"] == "succeeded", cluster.cli("logs", run_id, "train").stdout
    t = st["tasks"][0]
    assert t["metrics"]["accuracy"]["step"] == 4
    assert t["metrics"]["accuracy"]["value"] > 0.8
    assert "samples_per_s" in t["metrics"] and "val_loss" in t["metrics"]
    assert t["metrics"]["comm_time_s"]["step"] == 4  # time in the gradient sum
    assert t["metrics"]["comm_time_s"]["value"] > 0
    assert t["progress_text"] == "epoch 4/4"


def forever_mpi_step(data, marker):
    return f"""
name: mpiforever
tasks:
  - name: train
    kind: mpi
    np: 2
    command: >-
      trainyard-train fit --train {data} --model mlp:256,256 --epochs 1000000 --out {marker}
"""


def fd_targets(pid):
    out = []
    for f in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            out.append(os.readlink(f))
        except OSError:  # closed meanwhile
            pass
    return out


def running(pid):
    """Alive and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_ranks(marker):
    """The PIDs of a forever step's two ranks, once mpirun and both run."""
    def ranks():
        pids = pids_matching(marker)
        try:
            r = [q for q in pids if "mpirun" not in open(f"/proc/{q}/cmdline").read()]
        except OSError:
            return None
        return r if len(pids) >= 3 and len(r) >= 2 else None
    return wait_until(ranks, 30, "two ranks")


def start_step(cluster, text, marker, shm_before):
    """Submits a forever step and waits for its ranks and Open MPI's segments
    in the attempt's own /dev/shm directory: (run id, ranks, directory)."""
    run_id = cluster.submit(text)
    cluster.wait_task_state(run_id, "train", ["running"])
    ranks = wait_ranks(marker)
    shm = set(glob.glob("/dev/shm/trainyard-*")) - shm_before
    assert len(shm) == 1
    shm_dir = shm.pop()
    wait_until(lambda: glob.glob(shm_dir + "/vader_segment.*"), 15,
               "Open MPI's segments in the attempt's directory")
    return run_id, ranks, shm_dir


def test_mpi_step_rank_death_cancel_and_timeout(cluster, tmp_path):
    data = one_worker_and_data(cluster, tmp_path, 8000)
    marker = str(tmp_path / "forever.bin")
    text = forever_mpi_step(data, marker)
    # Open MPI's shared memory and mpirun's session directory: in the
    # attempt's own /dev/shm directory, removed with the attempt even when
    # its ranks (and mpirun) were killed
    shm_before = set(glob.glob("/dev/shm/trainyard-*"))

    def shm_gone(what):  # (an older one may go meanwhile: a worker sweeps what crashed ones left)
        wait_until(lambda: not set(glob.glob("/dev/shm/trainyard-*")) - shm_before, 15,
                   f"the attempt's shared memory to be removed after {what}")

    # one rank dies: the whole step fails instead of hanging
    run_id, ranks, shm_dir = start_step(cluster, text, marker, shm_before)
    assert glob.glob(shm_dir + "/ompi.*/pid.*"), "mpirun's session directory is elsewhere"
    os.kill(ranks[0], signal.SIGKILL)
    st = cluster.wait_run(run_id, timeout=60)
    assert st["state"] == "failed" and st["tasks"][0]["state"] == "failed"
    wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone")
    shm_gone("a rank died")
    # cancel: mpirun and every rank go
    run_id = cluster.submit(text, name="p2.yaml")
    cluster.wait_task_state(run_id, "train", ["running"])
    wait_until(lambda: len(pids_matching(marker)) >= 3, 30, "mpirun and two ranks")
    assert cluster.json("cancel", run_id)["state"] == "cancelled"
    wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone after cancel")
    shm_gone("cancel")
    # a timeout: the step fails, saying so, and mpirun and every rank go
    run_id = cluster.submit(text.replace("    np: 2\n", "    np: 2\n    timeout_s: 3\n"),
                            name="p3.yaml")
    cluster.wait_task_state(run_id, "train", ["running"])
    wait_until(lambda: len(pids_matching(marker)) >= 3, 30, "mpirun and two ranks")
    st = cluster.wait_run(run_id, timeout=60)
    assert st["tasks"][0]["state"] == "failed", st
    assert st["tasks"][0]["reason"] == "timed out after 3s", st
    wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone after the timeout")
    shm_gone("the timeout")


def test_a_restarted_worker_ends_what_it_left_running(cluster, tmp_path):
    # a worker killed outright leaves its MPI step running (tasks run in
    # sessions of their own) and cannot remove the step's directory; the
    # same worker, started again, ends the job and removes the directory
    # before it registers
    data = one_worker_and_data(cluster, tmp_path, 4000)
    marker = str(tmp_path / "crash.bin")
    shm_before = set(glob.glob("/dev/shm/trainyard-*"))
    try:
        run_id, ranks, shm_dir = start_step(cluster, forever_mpi_step(data, marker), marker,
                                            shm_before)
        # mpirun holds the directory's lock as well (descriptor 3); its ranks do not
        old = pids_matching(marker)
        mpirun = [q for q in old if "mpirun" in open(f"/proc/{q}/cmdline").read()]
        assert len(mpirun) == 1 and os.readlink(f"/proc/{mpirun[0]}/fd/3") == shm_dir
        for q in ranks:
            assert shm_dir not in fd_targets(q)
        cluster.workers["w1"].kill(signal.SIGKILL)
        assert all(running(q) for q in old)  # the job outlives its worker
        assert os.path.isdir(shm_dir)
        cluster.start_worker("w1", "--cpus", "2")
        wait_until(lambda: cluster.master.text().count("worker w1 registered") == 2, 15,
                   "w1 to register again")
        assert not any(running(q) for q in old)
        assert not os.path.exists(shm_dir)
        log = cluster.workers["w1"].text()
        assert re.search(r"ending \d+ processes that an earlier run of worker w1 left running", log)
        assert f"removing {shm_dir}, left by a worker that is gone" in log
        # the master re-queued the step, as w1 no longer runs it: end it
        cluster.cli("cancel", run_id)
        wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone after cancel")
    finally:  # a job the worker did not end is the test's to end
        for q in pids_matching(marker):
            try:
                os.kill(q, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_retried_mpi_step_resumes_from_its_checkpoint(cluster, tmp_path):
    # attempt 1 trains 2 epochs, checkpoints beside its directory, then fails;
    # attempt 2 (4 epochs, --resume) continues after epoch 2
    data = one_worker_and_data(cluster, tmp_path, 4000)
    run_id = cluster.submit(f"""
name: mpiresume
tasks:
  - name: train
    kind: mpi
    np: 2
    retries: 1
    command: >-
      trainyard-train fit --train {data} --model mlp:16 --lr 0.05 --out model.bin
      --epochs $((TRAINYARD_ATTEMPT * 2)) --checkpoint-dir ../ck --resume
      && [ "$TRAINYARD_ATTEMPT" -gt 1 ]
""")
    st = cluster.wait_run(run_id, timeout=180)
    assert st["state"] == "succeeded", cluster.cli("logs", run_id, "train").stdout
    t = st["tasks"][0]
    assert t["attempt"] == 2
    assert t["progress_text"] == "epoch 4/4"
    first = cluster.cli("logs", run_id, "train", "--attempt", "1").stdout
    second = cluster.cli("logs", run_id, "train", "--attempt", "2").stdout
    assert "starting afresh" in first and "resuming after epoch 2" in second


def test_mpi_step_gets_one_gpu_per_rank(cluster):
    cluster.start_master()
    cluster.start_worker("g1", "--gpus", "4", "--cpus", "4")
    cluster.wait_workers(["g1"])
    run_id = cluster.submit("""
name: gpuranks
tasks:
  - name: ranks
    kind: mpi
    np: 2
    resources: {gpus: 2, cpus: 1}
    command: ["sh", "-c", "echo rank $OMPI_COMM_WORLD_RANK gpus $CUDA_VISIBLE_DEVICES"]
""")
    st = cluster.wait_run(run_id, timeout=60)
    assert st["state"] == "succeeded"
    lines = sorted(cluster.cli("logs", run_id, "ranks").stdout.split("\n")[:-1])
    assert len(lines) == 2
    # "[rank R] rank R gpus LIST": the worker's prefix says which rank wrote it
    got = {l.split()[1].rstrip("]"): l.split()[5] for l in lines}
    assert all(l.split()[1].rstrip("]") == l.split()[3] for l in lines), lines
    assert set(got) == {"0", "1"}
    slices = [set(got[r].split(",")) for r in ("0", "1")]
    assert all(len(s) == 2 for s in slices) and not slices[0] & slices[1]
    assert slices[0] | slices[1] <= {"0", "1", "2", "3"}


@pytest.mark.skipif(not os.path.exists(FASHION), reason="dataset-fashion-mnist not installed")
def test_the_fashion_example_trains_through_the_cluster(cluster):
    """examples/pipelines/fashion.yaml, what scripts/demo.sh runs, as it is
    (one epoch): two ranks train on Fashion-MNIST and the run reports test
    accuracy, progress and the checkpoint."""
    one_worker(cluster)
    text = open(os.path.join(ROOT, "examples", "pipelines", "fashion.yaml")).read()
    run_id = cluster.submit(text, "epochs=1", f"data={FASHION}")
    st = cluster.wait_run(run_id, timeout=240)
    assert st["state"] == "succeeded", cluster.cli("logs", run_id, "train").stdout
    train = next(t for t in st["tasks"] if t["name"] == "train")
    assert train["metrics"]["accuracy"]["step"] == 1
    assert train["metrics"]["accuracy"]["value"] > 0.75  # one epoch (ten reach 0.84: a test)
    assert train["metrics"]["samples_per_s"]["value"] > 0
    assert train["progress_text"] == "epoch 1/1"
    log = cluster.cli("logs", run_id, "train").stdout
    assert "trained 1 epochs on 2 rank(s)" in log
    # beside the attempts' directories, for a retry to resume from
    assert os.path.exists(os.path.join(cluster.tmp, "work-w1", run_id, "train", "checkpoints",
                                       "checkpoint"))
    # the model went to the master's artifact store, and comes back the same
    model = os.path.join(cluster.tmp, "work-w1", run_id, "train", str(train["attempt"]),
                         "fashion.model")
    [art] = [a for a in cluster.json("artifacts", run_id) if a["task"] == "train"]
    assert art["name"] == "fashion.model"
    with open(model, "rb") as f:
        assert art["sha256"] == hashlib.sha256(f.read()).hexdigest()
    got = os.path.join(cluster.tmp, "got.model")
    cluster.cli("get", run_id, "train/fashion.model", "-o", got)
    run("info", got)  # a model file trainyard-train reads
    # evaluate got that model as its input, and report the evaluation
    ev = next(t for t in st["tasks"] if t["name"] == "evaluate")
    assert ev["state"] == "succeeded"
    report = cluster.cli("logs", run_id, "report").stdout
    assert "test set:" in report and '"accuracy"' in report
    arts = {(a["task"], a["name"]) for a in cluster.json("artifacts", run_id)}
    assert arts == {("prepare", "manifest.txt"), ("train", "fashion.model"),
                    ("evaluate", "eval.json")}
