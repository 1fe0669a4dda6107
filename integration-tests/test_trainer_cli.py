"""trainyard-train's command line: help for every command, and outputs: a
place that cannot take them, or an input's place, is refused before the work
that would fill them; a written file replaces the old one whole (interrupted,
or on a full disk, the old one stays); special files are written in place."""
import gzip
import json
import os
import shlex
import signal
import stat
import subprocess

import pytest

from conftest import wait_until
from test_trainer import MPIRUN, TRAIN, mpi_env, ompi_dirs, run  # noqa: F401 (autouse)

pytestmark = pytest.mark.skipif(not os.access(TRAIN, os.X_OK), reason="trainer not built")


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["fit", "--help"], ["eval", "-h"],
                                  ["predict", "--model", "m", "--help"], ["drift", "--help"]])
def test_help_goes_to_stdout_for_every_command(args):
    r = run(*args, check=False)
    assert r.returncode == 0 and r.stderr == ""
    for cmd in ("gen", "fit", "eval", "predict", "info", "bgzf", "drift"):
        assert f"trainyard-train {cmd} " in r.stdout


def test_a_bad_option_gets_usage_on_stderr():
    r = run("eval", "--no-such-option", check=False)
    assert r.returncode == 2 and r.stdout == ""
    assert "unrecognized option '--no-such-option'" in r.stderr and "--help" in r.stderr


@pytest.fixture
def fifo(tmp_path):
    """Data that blocks whoever opens it to read until a writer comes: a
    command that refuses before loading ends, one that loads hangs (and is
    released at the end, so that no rank is left waiting)."""
    path = tmp_path / "data.csv"
    os.mkfifo(path)
    yield str(path)
    try:  # a reader still waiting gets an empty file
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # no reader: nothing to release


@pytest.mark.parametrize("outs, says", [
    (["--out", "{d}/no/m.model"], "cannot write {d}/no/m.model: No such file or directory"),
    (["--out", "{d}"], "cannot write {d}: Is a directory"),
    (["--out", "{d}/m.model", "--onnx", "{d}/no/m.onnx"],
     "cannot write {d}/no/m.onnx: No such file or directory"),
    (["--out", "{d}/m.model", "--onnx", "{d}/plain/m.onnx"],
     "cannot write {d}/plain/m.onnx: Not a directory"),
    (["--out", "{d}/m.model", "--checkpoint-dir", "{d}/plain/ck"],
     "--checkpoint-dir {d}/plain/ck: Not a directory"),
], ids=["model-dir-missing", "model-is-dir", "onnx-dir-missing", "onnx-under-file",
        "checkpoint-dir-under-file"])
def test_fit_refuses_outputs_it_cannot_write_before_loading(tmp_path, fifo, outs, says):
    d = str(tmp_path)
    (tmp_path / "plain").write_text("x")
    r = run("fit", "--train", fifo, "--model", "mlp:8", *[o.format(d=d) for o in outs], np=2,
            check=False, timeout=120)
    assert r.returncode != 0
    assert says.format(d=d) in r.stderr
    assert r.stderr.count(says.format(d=d)) == 1  # said once, by rank 0
    assert "metric" not in r.stdout and "progress" not in r.stdout
    assert not (tmp_path / "m.model").exists()
    assert sorted(os.listdir(d)) == ["data.csv", "plain"]  # no temporary left either


def test_predict_refuses_an_unwritable_output_and_replaces_a_file_whole(tmp_path, fifo):
    data, model = str(tmp_path / "syn.csv"), str(tmp_path / "m.model")
    run("gen", "--rows", "600", "--features", "4", "--classes", "3", "--seed", "2",
        "--out", data)
    run("fit", "--train", data, "--model", "softmax", "--epochs", "1", "--batch", "64",
        "--out", model)
    r = run("predict", "--model", model, "--data", fifo, "--out", str(tmp_path / "no" / "p.csv"),
            check=False, timeout=60)
    assert r.returncode != 0
    assert f"cannot write {tmp_path}/no/p.csv: No such file or directory" in r.stderr
    out = tmp_path / "p.csv"
    out.write_text("old predictions\n" * 5000)
    run("predict", "--model", model, "--data", data, "--out", str(out))
    lines = out.read_text().splitlines()
    assert lines[0] == "prediction,p0,p1,p2" and len(lines) == 601
    assert "old predictions" not in lines
    assert sorted(os.listdir(tmp_path)) == ["data.csv", "m.model", "p.csv", "syn.csv"]
    # - is stdout: the same CSV, and a stdout that cannot take it is an error
    r = run("predict", "--model", model, "--data", data, "--out", "-")
    assert r.stdout == out.read_text()
    with open("/dev/full", "w") as full:
        r = subprocess.run([TRAIN, "predict", "--model", model, "--data", data, "--out", "-"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)
    assert r.returncode != 0 and "cannot write to stdout: No space left on device" in r.stderr


@pytest.mark.parametrize("name", ["data.csv", "data.csv.gz"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=["int", "term", "kill"])
def test_gen_stopped_half_way_leaves_the_old_file(tmp_path, name, sig):
    out = tmp_path / name
    out.write_text("old\n")
    p = subprocess.Popen([TRAIN, "gen", "--rows", "100000000", "--features", "4", "--out",
                          str(out)], stdout=subprocess.PIPE, text=True,
                         env=dict(os.environ, TY_PROGRESS_EVERY_S="0"))
    try:
        line = p.stdout.readline()  # rows are being written
        assert line.startswith("progress ") and int(line.split()[3].split("/")[0]) > 0
        p.send_signal(sig)
        assert p.wait(timeout=30) == -sig
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
    assert out.read_text() == "old\n"
    # what was written goes with the command, unless it could not act (kill -9)
    left = [name] + ([f"{name}.tmp.{p.pid}"] if sig == signal.SIGKILL else [])
    assert sorted(os.listdir(tmp_path)) == left
    run("gen", "--rows", "50", "--features", "4", "--out", str(out))
    text = gzip.open(out, "rt").read() if name.endswith(".gz") else out.read_text()
    assert len(text.splitlines()) == 51
    assert sorted(os.listdir(tmp_path)) == left


def test_bgzf_interrupted_leaves_the_old_file(tmp_path):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv.gz"
    os.mkfifo(src)
    out.write_text("old\n")
    p = subprocess.Popen([TRAIN, "bgzf", str(src), str(out)])
    try:
        with open(src, "w") as w:  # opens once bgzf reads: it then waits for more
            w.write("a,b\n1,2\n")
            w.flush()
            tmp = tmp_path / f"out.csv.gz.tmp.{p.pid}"
            wait_until(tmp.exists, what="bgzf's temporary file")
            p.send_signal(signal.SIGINT)
            assert p.wait(timeout=30) == -signal.SIGINT
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert out.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["in.csv", "out.csv.gz"]


def test_a_full_disk_fails_the_write_and_keeps_the_old_files(tmp_path):
    # a small tmpfs of its own (a mount namespace of its own) fills up while
    # the model or the predictions are written: an error, and the old files
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here (unshare -m)")
    data, small = str(tmp_path / "syn.csv"), str(tmp_path / "small.model")
    run("gen", "--rows", "20000", "--features", "8", "--classes", "3", "--out", data)
    run("fit", "--train", data, "--model", "softmax", "--epochs", "1", "--out", small)
    full = tmp_path / "full"
    full.mkdir()
    fit = MPIRUN + ["-np", "1", TRAIN, "fit", "--train", data, "--model", "mlp:1024,64",
                    "--epochs", "1", "--out", f"{full}/m.model"]
    predict = [TRAIN, "predict", "--model", small, "--data", data, "--out", f"{full}/p.csv"]
    gen = [TRAIN, "gen", "--rows", "20000", "--features", "8", "--out"]
    names = ["d.csv", "d.csv.gz", "m.model", "p.csv"]
    script = (f"mount -t tmpfs -o size=128k tmpfs {full} && cd {full} && "
              + " && ".join(f"printf old > {n}" for n in names) + " && "
              f"{shlex.join(fit)}; echo fit=$?; {shlex.join(predict)}; echo predict=$?; "
              f"{shlex.join(gen)} d.csv; echo gen=$?; {shlex.join(gen)} d.csv.gz; echo gen=$?; "
              "cat " + " ".join(names) + "; echo; ls -A")
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True,
                       timeout=300, env=mpi_env())
    out = [l for l in r.stdout.splitlines() if not l.startswith(("metric ", "progress "))]
    assert out[:4] == ["fit=1", "predict=2", "gen=2", "gen=2"], r.stdout + r.stderr[-3000:]
    for n in ("m.model", "p.csv"):
        assert f"cannot write {full}/{n}: No space left on device" in r.stderr
    for n in ("d.csv", "d.csv.gz"):
        assert f"cannot write {n}: No space left on device" in r.stderr
    assert out[4:] == ["old" * 4] + names  # the old files, and no temporary


def test_special_files_are_written_in_place(tmp_path):
    # stdout, a FIFO: written through, never replaced by a regular file (a
    # rename over /dev/null or /dev/stdout would take it from the whole
    # machine: the earlier binary did that).  /proc/self/fd/1 rather than
    # /dev/stdout, so that a regression fails here instead of doing it
    import threading
    out = "/proc/self/fd/1"
    r = run("gen", "--rows", "30", "--features", "3", "--out", out)
    assert r.stdout.splitlines()[0] == "f0,f1,f2,label" and len(r.stdout.splitlines()) == 31
    data = tmp_path / "d.csv"
    data.write_text(r.stdout)
    r = subprocess.run([TRAIN, "bgzf", str(data), out], capture_output=True,
                       timeout=60)
    assert r.returncode == 0 and gzip.decompress(r.stdout).decode() == data.read_text()
    fifo = tmp_path / "model.fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()))
    reader.start()
    try:
        run("fit", "--train", str(data), "--model", "softmax", "--batch", "10", "--epochs", "1",
            "--out", str(fifo))
    finally:
        if reader.is_alive():  # the trainer failed before opening it: release the reader
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(timeout=30)
    assert got and got[0].startswith(b"TYMODEL\0")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["d.csv", "model.fifo"]


def test_an_output_is_never_written_over_an_input(tmp_path):
    # a slip of the keyboard (--out data.csv) must not cost the data
    data, val, model = tmp_path / "d.csv", tmp_path / "v.csv", tmp_path / "m.model"
    run("gen", "--rows", "200", "--features", "3", "--out", str(data))
    run("gen", "--rows", "100", "--features", "3", "--seed", "2", "--out", str(val))
    run("fit", "--train", str(data), "--model", "softmax", "--batch", "20", "--out", str(model))
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(data)
    before = {p: p.read_bytes() for p in (data, val, model)}
    fit = ["fit", "--train", str(data), "--val", str(val), "--model", "softmax", "--batch", "20"]
    cases = [
        (fit + ["--out", str(data)], f"{data} is the training data"),
        (fit + ["--out", str(val)], f"{val} is the validation data"),
        (fit + ["--out", str(tmp_path / "n.model"), "--onnx", str(tmp_path / "link.csv")],
         f"{tmp_path}/link.csv is the training data"),
        (fit + ["--out", str(tmp_path / "n.model"), "--onnx", f"{tmp_path}/sub/../n.model"],
         f"{tmp_path}/sub/../n.model is the model (--out)"),
        (["predict", "--model", str(model), "--data", str(data), "--out", str(data)],
         f"{data} is the data"),
        (["predict", "--model", str(model), "--data", str(data), "--out", str(model)],
         f"{model} is the model"),
    ]
    for args, says in cases:
        r = run(*args, check=False)
        assert r.returncode != 0 and f"{says}: not writing over it" in r.stderr, (args, r.stderr)
        assert "metric" not in r.stdout
    assert {p: p.read_bytes() for p in (data, val, model)} == before
    assert not (tmp_path / "n.model").exists()


@pytest.mark.parametrize("extra, says", [
    ([], "--patience needs validation data: --val DATA or --val-split F"),
    (["--resume"], "--resume needs --checkpoint-dir"),
    # a step takes rows from every virtual shard: with fewer rows than shards
    # some shards would give none, and their rows would never be trained on
    (["--batch", "4"], "--batch 4 is smaller than the 8 virtual shards every step takes its "
                       "rows from (--vshards, default 8): use --vshards 4 or fewer"),
    (["--batch", "2", "--vshards", "4"], "--batch 2 is smaller than the 4 virtual shards"),
], ids=["patience-without-validation", "resume-without-checkpoints", "batch-below-shards",
        "batch-below-given-shards"])
def test_fit_refuses_options_that_cannot_work_before_loading(tmp_path, fifo, extra, says):
    # (the data is a FIFO nobody writes: a fit that started loading would hang)
    r = run("fit", "--train", fifo, "--model", "softmax", "--patience", "2" if not extra else "0",
            *extra, "--out", str(tmp_path / "m.model"), check=False, timeout=60)
    assert r.returncode == 2 and says in r.stderr
    assert not (tmp_path / "m.model").exists()


def test_too_few_rows_for_a_batch_says_what_to_do(tmp_path):
    data = tmp_path / "small.csv"
    # 12 rows, batch 8: the virtual shards are stretches of the file, and the
    # first row, written long, spans some of them: they hold no row at all
    rows = ["1." + "0" * 400 + ",2,0"] + [f"{i},{i + 1},{i % 2}" for i in range(1, 12)]
    data.write_text("a,b,y\n" + "\n".join(rows) + "\n")
    r = run("fit", "--train", str(data), "--model", "softmax", "--batch", "8", "--out",
            str(tmp_path / "m.model"), check=False)
    assert r.returncode != 0 and "too few rows for a batch of 8" in r.stderr
    assert "8 virtual shards" in r.stderr and "(12 rows in the training data)" in r.stderr
    assert "--vshards 1" in r.stderr and not (tmp_path / "m.model").exists()
    run("fit", "--train", str(data), "--model", "softmax", "--batch", "8", "--vshards", "1",
        "--out", str(tmp_path / "m.model"))
    assert (tmp_path / "m.model").exists()


def test_an_epoch_that_leaves_rows_out_is_said(tmp_path):
    """A batch the virtual shards do not divide takes unequal shares from
    them, and the shard that runs out first ends the epoch: with batch 20 (3
    rows from 4 of the 8 shards, 2 from the others) an epoch takes 82% of the
    rows, and the trainer says so; batch 24 takes them all, silently.  The
    training row count in -o json leaves the validation split out."""
    data = str(tmp_path / "d.csv")
    run("gen", "--rows", "1000", "--features", "4", "--classes", "2", "--seed", "1",
        "--out", data)
    common = ["fit", "--train", data, "--model", "softmax", "--epochs", "1",
              "--out", str(tmp_path / "m.model"), "-o", "json"]
    r = run(*common, "--batch", "20")
    warned = [ln for ln in r.stderr.splitlines() if "warning: an epoch takes" in ln]
    assert len(warned) == 1, r.stderr
    assert "takes 820 of the 1000 training rows (82%)" in warned[0]
    assert "a --batch that 8 divides takes nearly all" in warned[0]
    assert json.loads(r.stdout)["train_rows"] == 1000
    r = run(*common, "--batch", "24")
    assert "warning" not in r.stderr, r.stderr
    # with a validation split, the training rows are the rest
    res = json.loads(run(*common, "--batch", "24", "--val-split", "0.2").stdout)
    assert 700 < res["train_rows"] < 900, res
