"""trainyard-train with real MPI ranks: learning, rank-count equivalence,
checkpoint/resume equivalence, a dead rank, Fashion-MNIST accuracy."""
import csv
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile

import pytest

from conftest import BUILD, pids_matching, wait_until

TRAIN = os.path.join(BUILD, "trainer", "trainyard-train")
FASHION = os.environ.get("TY_FASHION_DIR", "/usr/share/datasets/fashion-mnist")
MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]

pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")


# Open MPI's shared-memory segments and session directories for the runs
# started here (not through a worker, which gives each attempt its own): in a
# directory of this module's, removed at its end, as the tests kill jobs and
# Open MPI leaves a killed job's files behind
OMPI_DIRS = {}


@pytest.fixture(scope="module", autouse=True)
def ompi_dirs():
    d = tempfile.mkdtemp(prefix="ty-itest-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    OMPI_DIRS.update({"OMPI_MCA_btl_vader_backing_directory": d,
                      "OMPI_MCA_osc_sm_backing_directory": d, "OMPI_MCA_orte_tmpdir_base": d})
    yield
    OMPI_DIRS.clear()
    shutil.rmtree(d, ignore_errors=True)


def mpi_env(base=None, **extra):
    """base (the environment by default) with OMPI_DIRS and extra."""
    return dict(os.environ if base is None else base, **OMPI_DIRS, **extra)


def run(*args, np=1, timeout=300, check=True, env=None):
    # fit goes through mpirun even for one rank, as in a pipeline: Open MPI's
    # singleton mode (no mpirun) crashes LeakSanitizer's tracer in the
    # sanitized build
    mpi = np > 1 or args[0] == "fit"
    cmd = (MPIRUN + ["-np", str(np), TRAIN] if mpi else [TRAIN]) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=mpi_env(**(env or {})))
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr[-3000:]}")
    return r


def fit_json(*args, np=1, env=None):
    r = run("fit", *args, "-o", "json", np=np, env=env)
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    path = str(d / "syn.csv.gz")
    run("gen", "--rows", "20000", "--features", "8", "--classes", "3", "--seed", "7",
        "--out", path)
    return path


def test_gen_is_seeded_and_mlp_beats_linear(syn, tmp_path):
    again = str(tmp_path / "again.csv.gz")
    run("gen", "--rows", "20000", "--features", "8", "--classes", "3", "--seed", "7",
        "--out", again)
    import gzip
    assert gzip.open(syn).read() == gzip.open(again).read()
    lin = fit_json("--train", syn, "--val-split", "0.2", "--model", "softmax", "--epochs", "5",
                   "--out", str(tmp_path / "lin.model"))
    mlp = fit_json("--train", syn, "--val-split", "0.2", "--model", "mlp:64,32", "--epochs",
                   "10", "--lr", "0.05", "--out", str(tmp_path / "mlp.model"))
    assert lin["accuracy"] < 0.45        # 3 classes: a linear model stays near chance
    assert mlp["accuracy"] > 0.85        # hidden layers learn the checkerboard
    # eval and predict agree with each other
    ev = json.loads(run("eval", "--model", str(tmp_path / "mlp.model"), "--data", syn,
                        "-o", "json").stdout)
    out = str(tmp_path / "pred.csv")
    run("predict", "--model", str(tmp_path / "mlp.model"), "--data", syn, "--out", out)
    import gzip as gz
    truth = [int(r["label"]) for r in csv.DictReader(gz.open(syn, "rt"))]
    pred = [int(r["prediction"]) for r in csv.DictReader(open(out))]
    acc = sum(p == t for p, t in zip(pred, truth)) / len(truth)
    assert abs(acc - ev["accuracy"]) < 1e-9
    assert len(ev["confusion_matrix"]) == 3 and 0 < ev["f1"] <= 1


def test_epoch_metrics_go_to_the_report(syn, tmp_path):
    report = tmp_path / "report"
    cmd = MPIRUN + ["-np", "1", TRAIN, "fit", "--train", syn, "--val-split", "0.2", "--model",
                    "mlp:8", "--epochs", "2", "--out", str(tmp_path / "m.model")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env=mpi_env(TRAINYARD_REPORT=str(report)))
    assert r.returncode == 0, r.stderr
    lines = report.read_text().splitlines()
    for name in ("loss", "val_loss", "accuracy", "samples_per_s", "epoch_time_s"):
        assert [l.split()[3] for l in lines if l.startswith(f"metric {name} ")] == ["1", "2"]
    # one rank sums no gradients: no time in communication
    assert [float(l.split()[2]) for l in lines if l.startswith("metric comm_time_s ")] == [0, 0]
    assert lines[-1].startswith("progress 1.0000 epoch 2/2")
    assert "trained 2 epochs" in r.stdout  # with a report, stdout gets one summary line


@pytest.mark.parametrize("form", ["gzip", "plain"])
def test_one_and_two_ranks_train_the_same_model(syn, tmp_path, form):
    # gzip: shards by row index; plain: by byte ranges, each rank reading only its own
    import gzip
    data = syn
    if form == "plain":
        data = str(tmp_path / "syn.csv")
        with open(data, "wb") as f:
            f.write(gzip.open(syn).read())
    args = ["--train", data, "--val-split", "0.2", "--model", "mlp:32,16", "--epochs", "3",
            "--lr", "0.05", "--optimizer", "adam", "--seed", "11"]
    one = fit_json(*args, "--out", str(tmp_path / "one.model"))
    two = fit_json(*args, "--out", str(tmp_path / "two.model"), np=2)
    assert two["ranks"] == 2
    assert abs(one["loss"] - two["loss"]) < 1e-5
    assert abs(one["val_loss"] - two["val_loss"]) < 1e-5
    p1, p2 = str(tmp_path / "p1.csv"), str(tmp_path / "p2.csv")
    run("predict", "--model", str(tmp_path / "one.model"), "--data", syn, "--out", p1)
    run("predict", "--model", str(tmp_path / "two.model"), "--data", syn, "--out", p2)
    a = [r["prediction"] for r in csv.DictReader(open(p1))]
    b = [r["prediction"] for r in csv.DictReader(open(p2))]
    assert sum(x != y for x, y in zip(a, b)) <= len(a) * 0.001


# shm: every rank on this host, so gradients are summed in shared memory
# (4 and 3 ranks: each sums and updates its slice of the parameters); msg (TY_GRAD_SHM=0),
# as ranks on different hosts: 4 by pairwise exchanges, 3 by MPI_Allreduce
@pytest.mark.parametrize("np,vshards,shm", [(4, 8, "1"), (3, 6, "1"), (4, 8, "0"), (3, 6, "0")])
def test_more_ranks_train_the_same_model(syn, tmp_path, np, vshards, shm):
    args = ["--train", syn, "--val-split", "0.2", "--model", "mlp:16", "--epochs", "2",
            "--lr", "0.05", "--seed", "4", "--vshards", str(vshards)]
    one = fit_json(*args, "--out", str(tmp_path / "one.model"))
    many = fit_json(*args, "--out", str(tmp_path / "many.model"), np=np,
                    env={"TY_GRAD_SHM": shm})
    assert many["ranks"] == np
    assert abs(one["loss"] - many["loss"]) < 1e-5
    assert abs(one["val_loss"] - many["val_loss"]) < 1e-5


def test_two_ranks_sum_the_same_through_shared_memory_and_messages(syn, tmp_path):
    # both add the same two gradients, each rank its own first: the same bits
    args = ["--train", syn, "--model", "mlp:32,16", "--epochs", "2", "--lr", "0.05",
            "--optimizer", "adam", "--seed", "6"]
    shm, msg = str(tmp_path / "shm.model"), str(tmp_path / "msg.model")
    a = fit_json(*args, "--out", shm, np=2)
    b = fit_json(*args, "--out", msg, np=2, env={"TY_GRAD_SHM": "0"})
    assert a["loss"] == b["loss"]
    with open(shm, "rb") as fa, open(msg, "rb") as fb:
        assert fa.read() == fb.read()  # weights and all, byte for byte


def test_too_small_dev_shm_falls_back_to_messages(syn, tmp_path):
    # a container's 64 MiB /dev/shm, scaled down: Open MPI hangs when a shared
    # window does not fit there, so the trainer checks first; a tmpfs of its
    # own on /dev/shm, in a mount namespace of its own
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    fit = MPIRUN + ["-np", "2", TRAIN, "fit", "--train", syn, "--model", "mlp:1024,1024",
                    "--epochs", "1", "--out", str(tmp_path / "m.model"), "-o", "json"]
    script = "mount -t tmpfs -o size=24m tmpfs /dev/shm && exec " + shlex.join(fit)
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "/dev/shm has 24 MiB free" in r.stderr and "summing by messages" in r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["ranks"] == 2


def test_killed_and_resumed_run_ends_with_the_same_model(tmp_path):
    data = str(tmp_path / "big.csv")
    run("gen", "--rows", "60000", "--features", "16", "--classes", "4", "--seed", "3",
        "--out", data)
    args = ["--train", data, "--model", "mlp:96,48", "--epochs", "6", "--lr", "0.05",
            "--seed", "5"]
    straight = str(tmp_path / "straight.model")
    run("fit", *args, "--out", straight)
    ck = tmp_path / "ck"
    ck.mkdir()
    resumed = str(tmp_path / "resumed.model")
    # run directly so SIGKILL hits the trainer itself (see run() on LeakSanitizer)
    p = subprocess.Popen([TRAIN, "fit", *args, "--checkpoint-dir", str(ck), "--out", resumed],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=mpi_env(ASAN_OPTIONS="detect_leaks=0"))
    wait_until(lambda: (ck / "checkpoint").exists() or p.poll() is not None, 120,
               "the first checkpoint")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert p.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not os.path.exists(resumed)
    r = run("fit", *args, "--checkpoint-dir", str(ck), "--resume", "--out", resumed)
    assert "resuming after epoch" in r.stderr
    assert open(straight, "rb").read() == open(resumed, "rb").read()


def test_gen_and_loading_show_progress(syn, tmp_path):
    # TY_PROGRESS_EVERY_S=0: a line at every chance (default: at most one a second)
    env = dict(os.environ, TY_PROGRESS_EVERY_S="0")
    out = str(tmp_path / "p.csv")
    r = subprocess.run([TRAIN, "gen", "--rows", "30000", "--features", "4", "--classes", "2",
                        "--out", out], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    done = [int(l.split()[3].split("/")[0]) for l in r.stdout.splitlines()
            if l.startswith("progress ")]
    assert len(done) >= 3 and done == sorted(done) and done[-1] <= 30000
    assert all(l.endswith("/30000") for l in r.stdout.splitlines())
    report = tmp_path / "report"
    r = subprocess.run(MPIRUN + ["-np", "2", TRAIN, "fit", "--train", syn, "--val", out,
                                 "--model", "softmax", "--epochs", "1", "--out",
                                 str(tmp_path / "m.model"), "--target", "label"],
                       capture_output=True, text=True, timeout=300,
                       env=mpi_env(env, TRAINYARD_REPORT=str(report)))
    lines = report.read_text().splitlines()
    assert r.returncode != 0  # 4 validation features against 8: refused after loading both
    assert "validation data has 4 features, training 8" in r.stderr
    loading = [l for l in lines if l.startswith("progress 0 loading training data ")]
    pct = [int(l.rsplit(" ", 1)[1].rstrip("%")) for l in loading]
    assert len(pct) >= 1 and pct == sorted(pct) and pct[-1] <= 100  # rank 0 only
    assert any(l.startswith("progress 0 loading validation data ") for l in lines)
    # eval, predict and drift: stdout is their answer, so progress goes to stderr
    m = str(tmp_path / "p.model")
    run("fit", "--train", out, "--model", "softmax", "--epochs", "1", "--out", m)
    r = subprocess.run([TRAIN, "eval", "--model", m, "--data", out, "-o", "json"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["rows"] == 30000
    assert f"trainyard-train: loading {out}: " in r.stderr


def test_checkpoint_dir_is_made_or_refused_before_training(syn, tmp_path):
    ck = tmp_path / "a" / "b"
    run("fit", "--train", syn, "--model", "softmax", "--epochs", "1", "--checkpoint-dir",
        str(ck), "--out", str(tmp_path / "m.model"), np=2)
    assert (ck / "checkpoint").is_file()
    (tmp_path / "file").write_text("x")
    r = run("fit", "--train", syn, "--model", "softmax", "--epochs", "1", "--checkpoint-dir",
            str(tmp_path / "file" / "ck"), "--out", str(tmp_path / "n.model"), np=2, check=False)
    assert r.returncode != 0
    assert "--checkpoint-dir " + str(tmp_path / "file" / "ck") + ": Not a directory" in r.stderr
    assert "metric" not in r.stdout and not (tmp_path / "n.model").exists()


def test_bgzf_rewrites_gzip_for_sharded_reads(syn, tmp_path):
    import gzip
    text = gzip.open(syn).read()
    std = tmp_path / "std.csv.gz"
    std.write_bytes(gzip.compress(text))  # one plain gzip member: no random access
    out = tmp_path / "b.csv.gz"
    r = subprocess.run([TRAIN, "bgzf", str(std), str(out)], capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, TY_PROGRESS_EVERY_S="0"))
    assert r.returncode == 0, r.stderr
    assert any(l.startswith("progress ") and " bytes " in l for l in r.stdout.splitlines())
    data = out.read_bytes()
    assert gzip.decompress(data) == text
    assert data[12:14] == b"BC" and len(data) > 65536  # BGZF blocks (the "BC" extra field)
    # the same model from it as from the original, at 2 ranks
    args = ["--model", "softmax", "--epochs", "1", "--seed", "3"]
    a = fit_json("--train", str(std), *args, "--out", str(tmp_path / "a.model"), np=2)
    b = fit_json("--train", str(out), *args, "--out", str(tmp_path / "b.model"), np=2)
    assert abs(a["loss"] - b["loss"]) < 1e-6
    r = subprocess.run([TRAIN, "bgzf", str(tmp_path / "none.gz"), str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "cannot read" in r.stderr and out.read_bytes() == data


def test_resume_refuses_a_checkpoint_of_another_model_or_a_corrupt_one(syn, tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    args = ["--train", syn, "--epochs", "1", "--checkpoint-dir", str(ck), "--resume",
            "--out", str(tmp_path / "m.model")]
    first = run("fit", *args, "--model", "mlp:16")
    assert "starting afresh" in first.stderr
    saved = (ck / "checkpoint").read_bytes()
    for other in (["--model", "mlp:17"], ["--model", "mlp:16", "--optimizer", "adam"]):
        r = run("fit", *args, *other, check=False)
        assert r.returncode != 0
        assert "was written for another model or optimizer" in r.stderr, r.stderr
        assert (ck / "checkpoint").read_bytes() == saved  # left as it was
    (ck / "checkpoint").write_bytes(saved[:-9])
    r = run("fit", *args, "--model", "mlp:16", check=False)
    assert r.returncode != 0
    assert "is not a checkpoint, or is corrupt" in r.stderr, r.stderr
    # the matching model resumes (here: nothing left to do after epoch 1), at 2
    # ranks too: rank 0 reads the checkpoint and sends it to the others
    (ck / "checkpoint").write_bytes(saved)
    assert "resuming after epoch 1" in run("fit", *args, "--model", "mlp:16").stderr
    r = run("fit", *args[:-2], "--epochs", "2", "--out", str(tmp_path / "m2.model"),
            "--model", "mlp:16", np=2)
    assert r.stderr.count("resuming after epoch 1") == 1


def test_ranks_run_with_one_blas_thread_on_the_cpus_kernels(syn, tmp_path):
    """OpenBLAS is set up before main: the trainer runs itself again with
    OPENBLAS_NUM_THREADS=1 (and the right OPENBLAS_CORETYPE where Debian's
    OpenBLAS does not know the CPU), under its own name."""
    j = fit_json("--train", syn, "--model", "softmax", "--epochs", "1",
                 "--out", str(tmp_path / "s.model"))
    assert j["device"] == "cpu"
    if " avx2" in open("/proc/cpuinfo").read():
        assert j["blas_core"].lower() != "prescott", j
    marker = str(tmp_path / "env.model")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    p = subprocess.Popen(MPIRUN + ["-np", "2", TRAIN, "fit", "--train", syn, "--model",
                                   "mlp:64", "--epochs", "100000", "--out", marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env=mpi_env(env))

    def settled():
        ranks = [q for q in pids_matching(marker) if q != p.pid]
        try:
            return len(ranks) == 2 and all(
                open(f"/proc/{q}/comm").read().strip() == "trainyard-train" and
                b"OPENBLAS_NUM_THREADS=1" in open(f"/proc/{q}/environ", "rb").read().split(b"\0")
                for q in ranks)
        except OSError:
            return False
    try:
        wait_until(settled, 30, "both ranks re-run with OPENBLAS_NUM_THREADS=1")
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone")


def test_a_bad_row_in_one_shard_ends_every_rank(tmp_path):
    # only rank 1 reads the bad row; rank 0 must not wait for it in a collective
    data = tmp_path / "badtail.csv"
    data.write_text("a,b,y\n" + "".join(f"{i},{2 * i},{i % 2}\n" if i != 1900 else "x,1,0\n"
                                        for i in range(2000)))
    r = run("fit", "--train", str(data), "--model", "softmax", "--epochs", "1",
            "--out", str(tmp_path / "m"), np=2, check=False, timeout=60)
    assert r.returncode != 0
    assert "badtail.csv (line at byte 21141): field 1 'x' is not a number" in r.stderr


def test_a_dead_rank_ends_the_job(syn, tmp_path):
    marker = str(tmp_path / "dead.model")
    p = subprocess.Popen(MPIRUN + ["-np", "2", TRAIN, "fit", "--train", syn, "--model",
                                   "mlp:256,256", "--epochs", "100000", "--out", marker],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env=mpi_env())
    try:
        wait_until(lambda: len([q for q in pids_matching(marker) if q != p.pid]) >= 2, 30,
                   "both ranks")
        ranks = [q for q in pids_matching(marker) if q != p.pid]
        os.kill(ranks[-1], signal.SIGKILL)
        p.wait(timeout=30)  # no hang: mpirun ends the job
        assert p.returncode != 0
        wait_until(lambda: not pids_matching(marker), 15, "every rank to be gone")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)


@pytest.mark.skipif(not os.path.exists(FASHION), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_mlp_reaches_84_percent(tmp_path):
    tr = f"idx:{FASHION}/train-images-idx3-ubyte.gz,{FASHION}/train-labels-idx1-ubyte.gz"
    te = f"idx:{FASHION}/t10k-images-idx3-ubyte.gz,{FASHION}/t10k-labels-idx1-ubyte.gz"
    out = str(tmp_path / "fashion.model")
    res = fit_json("--train", tr, "--val", te, "--model", "mlp:128,64", "--epochs", "10",
                   "--batch", "256", "--lr", "0.05", "--out", out, np=2)
    assert res["epochs"] == 10
    assert res["accuracy"] >= 0.84, res
    # where a step's time went (rank 0, us), each part timed
    parts = res["step_us"]
    assert set(parts) == {"gather", "grad", "sum", "update"}
    for p in parts.values():
        assert 0 < p["median"] <= p["max"] and 0 < p["mean"] <= p["max"]
    # and every rank's means, rank 0's the same as above
    by_rank = res["step_us_by_rank"]
    assert len(by_rank) == 2 and all(min(r.values()) > 0 for r in by_rank)
    assert all(abs(by_rank[0][k] - parts[k]["mean"]) < 1e-6 * parts[k]["mean"] for k in parts)
    ev = json.loads(run("eval", "--model", out, "--data", te, "-o", "json").stdout)
    assert abs(ev["accuracy"] - res["accuracy"]) < 1e-6
    # images without labels: predict takes them, eval and fit say what is missing
    images = f"idx:{FASHION}/t10k-images-idx3-ubyte.gz"
    p1, p2 = str(tmp_path / "p1.csv"), str(tmp_path / "p2.csv")
    run("predict", "--model", out, "--data", te, "--out", p1)
    run("predict", "--model", out, "--data", images, "--out", p2)
    a, b = open(p1).read(), open(p2).read()
    assert a == b and a.count("\n") == 10001
    r = run("eval", "--model", out, "--data", images, check=False)
    assert r.returncode != 0 and "eval needs labeled data" in r.stderr
    r = run("fit", "--train", images, "--model", "softmax", "--out", str(tmp_path / "x"),
            np=2, check=False)
    assert r.returncode != 0 and r.stderr.count("training needs targets") == 1


def test_drift_report_and_exit_status(tmp_path):
    ref, same, shifted = (str(tmp_path / n) for n in ("ref.csv", "same.csv", "shifted.csv"))
    run("gen", "--rows", "5000", "--features", "3", "--seed", "1", "--out", ref)
    run("gen", "--rows", "5000", "--features", "3", "--seed", "2", "--out", same)
    with open(same) as f, open(shifted, "w") as g:
        for i, line in enumerate(f):
            cols = line.rstrip("\n").split(",")
            if i:
                cols[2] = str(float(cols[2]) + 1.0)  # f2 moves by one sigma
            g.write(",".join(cols) + "\n")
    r = run("drift", "--reference", ref, "--current", same, "--threshold", "0.2", "-o", "json")
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["drift"] is False and rep["max_psi"] < 0.05
    report = tmp_path / "report"
    env = dict(os.environ, TRAINYARD_REPORT=str(report))
    r = subprocess.run([TRAIN, "drift", "--reference", ref, "--current", shifted, "--threshold",
                        "0.2", "-o", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 3
    rep = json.loads(r.stdout)
    flagged = [f["name"] for f in rep["features"] if f["drift"]]
    assert flagged == ["f2"]
    f2 = rep["features"][2]
    assert f2["psi"] > 0.5 and f2["ks"] > 0.3 and f2["p_value"] < 1e-10
    assert "metric drift 1" in report.read_text()
    # without --threshold: 0.2, the usual rule of thumb; a higher one lets f2 pass
    r = run("drift", "--reference", ref, "--current", shifted, "-o", "json", check=False)
    rep = json.loads(r.stdout)
    assert r.returncode == 3 and rep["threshold"] == 0.2 and rep["drifted_features"] == 1
    r = run("drift", "--reference", ref, "--current", shifted, "--threshold", "50", check=False)
    assert r.returncode == 0 and "0 feature(s) over the threshold (50)" in r.stdout


ONNX_EVAL = r'''
import sys, json
import numpy as np
import onnx
from onnx import numpy_helper
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
x = np.loadtxt(sys.argv[2], delimiter=",", skiprows=1, dtype=np.float32)[:, :-1]
env = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
env[m.graph.input[0].name] = x
for n in m.graph.node:  # run the graph as stored: its nodes in order
    a = [env[i] for i in n.input]
    if n.op_type == "Sub": r = a[0] - a[1]
    elif n.op_type == "Div": r = a[0] / a[1]
    elif n.op_type == "Gemm": r = a[0] @ a[1] + a[2]
    elif n.op_type == "Relu": r = np.maximum(a[0], 0)
    elif n.op_type == "Softmax":
        e = np.exp(a[0] - a[0].max(axis=1, keepdims=True)); r = e / e.sum(axis=1, keepdims=True)
    else: raise SystemExit("unexpected op " + n.op_type)
    env[n.output[0]] = r
print(json.dumps(env[m.graph.output[0].name].tolist()))
'''


@pytest.mark.parametrize("model", ["mlp:16,8", "softmax"])
def test_onnx_export_matches_predict(syn, tmp_path, model):
    import gzip
    data = str(tmp_path / "small.csv")
    with gzip.open(syn, "rt") as f, open(data, "w") as g:
        for i, line in enumerate(f):
            if i > 300:
                break
            g.write(line)
    mpath, opath = str(tmp_path / "m.model"), str(tmp_path / "m.onnx")
    run("fit", "--train", syn, "--model", model, "--epochs", "2", "--out", mpath, "--onnx", opath)
    pred = str(tmp_path / "pred.csv")
    run("predict", "--model", mpath, "--data", data, "--out", pred)
    theirs = [[float(r[f"p{k}"]) for k in range(3)] for r in csv.DictReader(open(pred))]
    script = tmp_path / "onnx_eval.py"
    script.write_text(ONNX_EVAL)
    r = subprocess.run(["/usr/bin/python3", str(script), opath, data], capture_output=True,
                       text=True, timeout=120)
    if "No module named 'onnx'" in r.stderr:
        pytest.skip("python3-onnx not installed")
    assert r.returncode == 0, r.stderr
    ours = json.loads(r.stdout)
    assert len(ours) == len(theirs) == 300
    worst = max(abs(a - b) for ra, rb in zip(ours, theirs) for a, b in zip(ra, rb))
    assert worst < 1e-4, worst


def named_csv(path, rows, seed, names=("setosa", "versicolor", "virginica"), label=True):
    import random
    rnd = random.Random(seed)
    with open(path, "w") as f:
        f.write("a,b,species\n" if label else "a,b\n")
        for _ in range(rows):
            k = rnd.randrange(len(names))
            a, b = k + rnd.gauss(0, 0.25), -k + rnd.gauss(0, 0.25)
            f.write(f"{a:.4f},{b:.4f},{names[k]}\n" if label else f"{a:.4f},{b:.4f}\n")
    return path


def test_class_names_as_targets(tmp_path):
    tr = named_csv(str(tmp_path / "tr.csv"), 3000, 1)
    va = named_csv(str(tmp_path / "va.csv"), 500, 2)
    unl = named_csv(str(tmp_path / "unl.csv"), 40, 3, label=False)
    args = ["--train", tr, "--val", va, "--model", "mlp:8", "--epochs", "3", "--seed", "2"]
    one = fit_json(*args, "--out", str(tmp_path / "one.model"), "--onnx", str(tmp_path / "m.onnx"))
    two = fit_json(*args, "--out", str(tmp_path / "two.model"), np=2)
    # the classes are the sorted names whatever the rank count: the same model
    assert abs(one["loss"] - two["loss"]) < 1e-5 and abs(one["val_loss"] - two["val_loss"]) < 1e-5
    assert one["accuracy"] > 0.95
    ev = json.loads(run("eval", "--model", str(tmp_path / "two.model"), "--data", va,
                        "-o", "json").stdout)
    assert [c["name"] for c in ev["per_class"]] == ["setosa", "versicolor", "virginica"]
    assert abs(ev["accuracy"] - two["accuracy"]) < 1e-6
    # predict on unlabeled rows (no target column): names out
    pred = str(tmp_path / "pred.csv")
    run("predict", "--model", str(tmp_path / "one.model"), "--data", unl, "--out", pred)
    rows = list(csv.DictReader(open(pred)))
    assert len(rows) == 40 and {r["prediction"] for r in rows} <= {"setosa", "versicolor",
                                                                    "virginica"}
    # each probability column is named by its class: the predicted one is the likeliest
    names = ["setosa", "versicolor", "virginica"]
    assert list(rows[0]) == ["prediction"] + [f"p_{n}" for n in names]
    for r in rows:
        assert r["prediction"] == max(names, key=lambda n: float(r[f"p_{n}"]))
    r = run("eval", "--model", str(tmp_path / "one.model"), "--data", unl, check=False)
    assert r.returncode != 0 and "has no target column ('species')" in r.stderr
    # the ONNX file carries them too
    r = subprocess.run(["/usr/bin/python3", "-c", "import onnx,sys; m=onnx.load(sys.argv[1]); "
                        "print({p.key: p.value for p in m.metadata_props}['class_names'])",
                        str(tmp_path / "m.onnx")], capture_output=True, text=True, timeout=60)
    if "No module named 'onnx'" not in r.stderr:
        assert json.loads(r.stdout) == ["setosa", "versicolor", "virginica"], r.stderr
    info = json.loads(run("info", str(tmp_path / "one.model"), "-o", "json").stdout)
    assert info["classes"] == ["setosa", "versicolor", "virginica"]
    assert info["features"] == ["a", "b"] and info["target"] == "species"
    assert info["layers"] == [2, 8, 3] and info["arch"] == "mlp" and info["epochs"] == 3
    text = run("info", str(tmp_path / "one.model")).stdout
    assert "classes    setosa, versicolor, virginica" in text and "features   2: a, b" in text
    # --class-names fixes the order
    fit_json(*args, "--class-names", "virginica,setosa,versicolor",
             "--out", str(tmp_path / "given.model"))
    ev = json.loads(run("eval", "--model", str(tmp_path / "given.model"), "--data", va,
                        "-o", "json").stdout)
    assert [c["name"] for c in ev["per_class"]] == ["virginica", "setosa", "versicolor"]


@pytest.mark.parametrize("extra,says", [
    (["--val", "OTHER"], "class 'tulip' is not one of the 3 classes"),
    (["--class-names", "setosa,versicolor"], "class 'virginica' is not one of the 2 classes"),
    (["--model", "linear"], "regression needs numeric targets"),
    (["--val", "NUMBERS"], "the targets mix class names and numbers"),
])
def test_class_name_errors(tmp_path, extra, says):
    tr = named_csv(str(tmp_path / "tr.csv"), 400, 1)
    other = named_csv(str(tmp_path / "other.csv"), 50, 2, names=("setosa", "tulip"))
    numbers = named_csv(str(tmp_path / "num.csv"), 50, 2, names=("0", "1"))
    extra = [{"OTHER": other, "NUMBERS": numbers}.get(a, a) for a in extra]
    args = ["--train", tr, "--model", "softmax", "--epochs", "1", "--out", str(tmp_path / "m")]
    r = run("fit", *args, *extra, np=2, check=False)
    assert r.returncode != 0
    assert says in r.stderr, r.stderr
    assert r.stderr.count(says) == 1 or "is not one of" in says  # said once, not per rank
    assert not os.path.exists(str(tmp_path / "m"))


def test_numbered_classes_can_be_named(syn, tmp_path):
    m = str(tmp_path / "m.model")
    fit_json("--train", syn, "--model", "softmax", "--epochs", "1", "--class-names",
             "low,mid,high", "--out", m)
    ev = json.loads(run("eval", "--model", m, "--data", syn, "-o", "json").stdout)
    assert [c["name"] for c in ev["per_class"]] == ["low", "mid", "high"]
    r = run("fit", "--train", syn, "--model", "softmax", "--epochs", "1", "--class-names",
            "low,mid", "--out", m + "2", check=False)
    assert r.returncode != 0 and "class 2 has no name: --class-names gives 2" in r.stderr
