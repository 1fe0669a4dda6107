"""trainyard-train's optimisation options end to end: weight decay shrinks
weights and not biases (SGD's L2, AdamW's decoupled decay), the learning
rate of every epoch reaches the report as the schedule says (warm-up,
cosine, step), early stopping keeps the best epoch's weights and reports
that epoch's figures, and all of it trains the same model at 1, 2 and 3
ranks, where the ranks split the optimizer update between them (slices of
the shared parameters that cut through layers' weights and biases), to
the bit where the sums are the same, and through a kill and a resume."""
import json
import math
import os
import signal
import struct
import subprocess
import zlib

import pytest

from conftest import ROOT, pids_matching, wait_until
from test_trainer import MPIRUN, TRAIN, fit_json, mpi_env, ompi_dirs, run  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")


def read_layers(path):
    """The model file's parameters as [(weights, biases)] per layer
    (docs/trainer.md, "Model file (version 2)"), its CRC checked."""
    data = open(path, "rb").read()
    assert zlib.crc32(data[:-4]) == struct.unpack("<I", data[-4:])[0]
    pos = 8  # past the magic

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v

    def skip_string():
        nonlocal pos
        n = take("I")[0]  # (before pos is read for the addition)
        pos += n

    version, _arch, _classify, nlayers = take("4I")
    assert version == 2
    dims = take("%dI" % (nlayers + 1))
    _nclasses, nnames = take("2I")
    for _ in range(nnames):
        skip_string()
    take("%df" % (2 * dims[0]))  # mean, std
    for _ in range(dims[0] + 1):  # feature names, target name
        skip_string()
    take("I2Q3d")  # epochs, seed, samples, loss, val_loss, val_accuracy
    nparams = take("Q")[0]
    p = take("%df" % nparams)
    assert pos == len(data) - 4
    layers, i = [], 0
    for din, dout in zip(dims, dims[1:]):
        layers.append((p[i:i + din * dout], p[i + din * dout:i + din * dout + dout]))
        i += din * dout + dout
    return layers


def norm(v):
    return math.sqrt(sum(x * x for x in v))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """600 training rows and 3,000 validation rows of one generated set:
    few enough to overfit, so the validation loss turns up."""
    d = tmp_path_factory.mktemp("optim")
    every = str(d / "all.csv")
    run("gen", "--rows", "3600", "--features", "8", "--classes", "3", "--seed", "3",
        "--out", every)
    lines = open(every).read().splitlines(keepends=True)
    train, val = str(d / "train.csv"), str(d / "val.csv")
    open(train, "w").writelines(lines[:601])
    open(val, "w").writelines(lines[:1] + lines[601:])
    return every, train, val


def report_metrics(path):
    """{name: [value per epoch]} and the tags of a TRAINYARD_REPORT file."""
    metrics, tags = {}, []
    for line in open(path):
        f = line.split()
        if f[0] == "metric":
            metrics.setdefault(f[1], []).append(float(f[2]))
            assert int(f[3]) == len(metrics[f[1]])  # epochs in order, none missing
        elif f[0] == "tag":
            tags.append(" ".join(f[1:]))
    return metrics, tags


@pytest.mark.parametrize("np", [1, 2])
@pytest.mark.parametrize("opt,wd", [("sgd", "0.1"), ("adam", "1")])
def test_weight_decay_shrinks_the_weights_not_the_biases(data, tmp_path, np, opt, wd):
    every = data[0]
    args = ["--train", every, "--model", "mlp:32,16", "--lr", "0.05", "--epochs", "3",
            "--optimizer", opt, "--seed", "5"]
    plain, decayed = str(tmp_path / "plain.model"), str(tmp_path / "decayed.model")
    fit_json(*args, "--out", plain, np=np)
    fit_json(*args, "--weight-decay", wd, "--out", decayed, np=np)
    a, b = read_layers(plain), read_layers(decayed)
    limit = 0.2 if opt == "sgd" else 0.8  # AdamW decays by lr * wd a step, not by the gradient
    for (wa, _), (wb, _) in zip(a, b):
        assert norm(wb) < limit * norm(wa)
    # biases are not decayed: together they stay near their size without decay
    ba, bb = sum(norm(x[1]) for x in a), sum(norm(x[1]) for x in b)
    assert bb > 0.5 * ba


@pytest.mark.parametrize("np", [1, 2])
def test_the_learning_rate_of_every_epoch_follows_the_schedule(data, tmp_path, np):
    every = data[0]
    base = ["--train", every, "--model", "mlp:16", "--lr", "0.1", "--batch", "64", "--seed", "2"]
    # step decay: halved every 2 epochs
    report = str(tmp_path / "step.report")
    fit_json(*base, "--epochs", "5", "--schedule", "step", "--step-size", "2", "--gamma", "0.5",
             "--out", str(tmp_path / "s.model"), np=np, env={"TRAINYARD_REPORT": report})
    lrs = report_metrics(report)[0]["lr"]
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025], rel=1e-5)
    # warm-up over 2.5 epochs' steps, then cosine to zero: the rate of each
    # epoch's last step, as docs/trainer.md gives it
    report = str(tmp_path / "cos.report")
    probe = fit_json(*base, "--epochs", "1", "--out", str(tmp_path / "p.model"), np=np)
    steps = probe["steps_per_epoch"]
    assert 0 < steps <= 3600 // 64
    warm, epochs = steps * 5 // 2, 6
    fit_json(*base, "--epochs", str(epochs), "--schedule", "cosine", "--warmup", str(warm),
             "--out", str(tmp_path / "c.model"), np=np, env={"TRAINYARD_REPORT": report})
    want = []
    for e in range(epochs):
        t = steps * (e + 1) - 1
        lr = 0.1 * (min(t + 1, warm) / warm) * 0.5 * (1 + math.cos(math.pi * t / (steps * epochs)))
        want.append(lr)
    got = report_metrics(report)[0]["lr"]
    assert got == pytest.approx(want, rel=1e-5)
    assert got[0] < got[1] and all(a > b for a, b in zip(got[1:], got[2:]))  # up, then down


@pytest.mark.parametrize("np", [1, 2])
def test_early_stopping_keeps_the_best_epoch(data, tmp_path, np):
    _, train, val = data
    model, report = str(tmp_path / "m.model"), str(tmp_path / "report")
    out = fit_json("--train", train, "--val", val, "--model", "mlp:128,128", "--lr", "0.1",
                   "--batch", "32", "--epochs", "60", "--patience", "3", "--seed", "3",
                   "--out", model, np=np, env={"TRAINYARD_REPORT": report})
    metrics, tags = report_metrics(report)
    val_loss, acc = metrics["val_loss"], metrics["accuracy"]
    stopped = len(val_loss)
    assert stopped < 60 and tags == [f"early_stop epoch_{stopped}"] and out["epochs"] == stopped
    best = min(range(stopped), key=lambda e: val_loss[e])
    assert best == stopped - 4  # three epochs without a better validation loss, then stop
    # the model handed on is the best epoch's, and fit says what it scores
    assert out["val_loss"] == pytest.approx(val_loss[best], rel=1e-5)
    assert out["accuracy"] == pytest.approx(acc[best], abs=1e-6)
    ev = json.loads(run("eval", "--model", model, "--data", val, "-o", "json").stdout)
    assert ev["accuracy"] == pytest.approx(acc[best], abs=1e-6)


# every option at once, through the split update: 2 ranks (each adds its
# peer's gradient) and 3 (a sum in rank order), against 1 rank
@pytest.mark.parametrize("np,vshards", [(2, 8), (3, 6)])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_ranks_split_the_update_and_train_the_same_model(data, tmp_path, np, vshards, opt):
    every = data[0]
    args = ["--train", every, "--val-split", "0.2", "--model", "mlp:24,12", "--epochs", "3",
            "--lr", "0.05", "--optimizer", opt, "--weight-decay", "0.01", "--warmup", "20",
            "--schedule", "cosine", "--seed", "9", "--vshards", str(vshards)]
    one, many = str(tmp_path / "one.model"), str(tmp_path / "many.model")
    a = fit_json(*args, "--out", one)
    b = fit_json(*args, "--out", many, np=np)
    assert b["ranks"] == np
    assert abs(a["loss"] - b["loss"]) < 1e-5 and abs(a["val_loss"] - b["val_loss"]) < 1e-5
    for (wa, ba), (wb, bb) in zip(read_layers(one), read_layers(many)):
        assert max(abs(x - y) for x, y in zip(wa + ba, wb + bb)) < 1e-4


# the optimised build too (CI builds it before these tests run): only there
# are loops vectorised, with a body and a scalar remainder
BUILDS = [TRAIN] + [b for b in [os.path.join(ROOT, "build", "release", "trainer",
                                             "trainyard-train")]
                    if os.access(b, os.X_OK) and not os.path.samefile(b, TRAIN)]


@pytest.mark.parametrize("binary", BUILDS)
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_a_split_update_gives_the_bits_of_a_whole_one(data, tmp_path, binary, opt):
    # 2 ranks that each update everything (messages) add the same two
    # gradients as 2 that split the update: the same bits, though 555
    # parameters split at 272 put some in a vectorised loop's body one way
    # and in its remainder the other
    args = ["fit", "--train", data[0], "--model", "mlp:24,12", "--epochs", "2", "--lr", "0.05",
            "--optimizer", opt, "--weight-decay", "0.01", "--seed", "6"]
    split, whole = str(tmp_path / "split.model"), str(tmp_path / "whole.model")
    for out, shm in ((split, "1"), (whole, "0")):
        subprocess.run(MPIRUN + ["-np", "2", binary] + args + ["--out", out], check=True,
                       capture_output=True, timeout=300, env=mpi_env(TY_GRAD_SHM=shm))
    with open(split, "rb") as fa, open(whole, "rb") as fb:
        assert fa.read() == fb.read()


def test_two_ranks_killed_and_resumed_end_with_the_same_model(tmp_path):
    # the checkpoint holds the node's one shared copy of the parameters and
    # moments (Adam's two); rank 0 writes it, every rank resumes from it
    data = str(tmp_path / "big.csv")
    run("gen", "--rows", "60000", "--features", "16", "--classes", "4", "--seed", "3",
        "--out", data)
    args = ["fit", "--train", data, "--model", "mlp:96,48", "--epochs", "6", "--lr", "0.01",
            "--optimizer", "adam", "--weight-decay", "0.01", "--schedule", "cosine",
            "--seed", "5"]
    straight, resumed = str(tmp_path / "straight.model"), str(tmp_path / "resumed.model")
    run(*args, "--out", straight, np=2)
    ck = tmp_path / "ck"
    ck.mkdir()
    p = subprocess.Popen(MPIRUN + ["-np", "2", TRAIN] + args + ["--checkpoint-dir", str(ck),
                                                                "--out", resumed],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env=mpi_env(ASAN_OPTIONS="detect_leaks=0"))
    try:
        wait_until(lambda: (ck / "checkpoint").exists() or p.poll() is not None, 120,
                   "the first checkpoint")
        ranks = [q for q in pids_matching(resumed) if q != p.pid]
        assert len(ranks) == 2, "the run finished before it could be killed"
        os.kill(ranks[-1], signal.SIGKILL)  # a dead rank: mpirun ends the job
        p.wait(timeout=30)
        assert p.returncode != 0
        wait_until(lambda: not pids_matching(resumed), 15, "every rank to be gone")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
    assert not os.path.exists(resumed)
    r = run(*args, "--checkpoint-dir", str(ck), "--resume", "--out", resumed, np=2)
    assert "resuming after epoch" in r.stderr
    assert open(straight, "rb").read() == open(resumed, "rb").read()


@pytest.mark.parametrize("stops,np", [(False, 1), (True, 1), (True, 2)],
                         ids=["last-epoch", "early-stop", "early-stop-2-ranks"])
def test_a_run_resumed_after_its_end_gives_the_same_model_and_figures(data, tmp_path, stops, np):
    """Killed after its last checkpoint but before the model was written: a
    resumed run trains no more and hands on the model and the figures the
    run would have. With early stopping the last checkpoint is the stopping
    epoch's (whatever --checkpoint-every says), and it stops there again."""
    _, train, val = data
    ck = tmp_path / "ck"
    args = ["--train", train, "--val", val, "--model", "mlp:128,128", "--lr", "0.1",
            "--batch", "32", "--seed", "3", "--checkpoint-dir", str(ck), "--checkpoint-every",
            "1000"]
    args += ["--epochs", "60", "--patience", "3"] if stops else ["--epochs", "3"]
    first, again = str(tmp_path / "first.model"), str(tmp_path / "again.model")
    reports = [str(tmp_path / "report1"), str(tmp_path / "report2")]
    out = fit_json(*args, "--out", first, np=np, env={"TRAINYARD_REPORT": reports[0]})
    metrics, tags = report_metrics(reports[0])
    end = len(metrics["loss"])
    assert out["epochs"] == end and (end < 60 if stops else end == 3)
    assert tags == [f"checkpoint epoch_{end}"] + ([f"early_stop epoch_{end}"] if stops else [])
    out2 = fit_json(*args, "--resume", "--out", again, np=np,
                    env={"TRAINYARD_REPORT": reports[1]})
    metrics2, tags2 = report_metrics(reports[1]) if os.path.exists(reports[1]) else ({}, [])
    assert metrics2 == {}  # no epoch trained again
    assert tags2 == ([f"early_stop epoch_{end}"] if stops else [])
    assert open(first, "rb").read() == open(again, "rb").read()
    for k in ("epochs", "loss", "val_loss", "accuracy", "samples_per_s"):
        assert out2[k] == out[k], k


def test_a_checkpoint_without_the_figures_still_resumes(data, tmp_path):
    """Checkpoints from before the latest epoch's figures were added (five
    doubles before the CRC) resume as they did."""
    _, train, _ = data
    ck = tmp_path / "ck"
    args = ["--train", train, "--model", "mlp:8", "--epochs", "4", "--seed", "3",
            "--checkpoint-dir", str(ck), "--checkpoint-every", "2"]
    straight = str(tmp_path / "straight.model")
    run("fit", *args, "--out", straight)
    # that run's last checkpoint is the end's: make the one of epoch 2, in the old layout
    run("fit", *args[:4], "--epochs", "2", *args[6:], "--out", str(tmp_path / "half.model"))
    new = open(ck / "checkpoint", "rb").read()
    assert struct.unpack("<I", new[4:8])[0] == 2
    old = new[:-4 - 40]
    open(ck / "checkpoint", "wb").write(old + struct.pack("<I", zlib.crc32(old)))
    resumed = str(tmp_path / "resumed.model")
    r = run("fit", *args, "--resume", "--out", resumed)
    assert "resuming after epoch 2" in r.stderr
    assert open(straight, "rb").read() == open(resumed, "rb").read()


def test_checkpoints_come_every_n_epochs_and_at_the_end(data, tmp_path):
    ck, report = tmp_path / "ck", str(tmp_path / "report")
    ck.mkdir()
    run("fit", "--train", data[0], "--model", "mlp:8", "--epochs", "5", "--checkpoint-dir",
        str(ck), "--checkpoint-every", "2", "--out", str(tmp_path / "m.model"),
        env={"TRAINYARD_REPORT": report})
    assert report_metrics(report)[1] == ["checkpoint epoch_2", "checkpoint epoch_4",
                                         "checkpoint epoch_5"]
    head = open(ck / "checkpoint", "rb").read(8)
    assert struct.unpack("<I", head[4:8])[0] == 5  # the last one written: the end's
    assert os.listdir(ck) == ["checkpoint"]  # written beside and renamed: no temporary left
