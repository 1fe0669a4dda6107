"""Outputs go to the master's artifact store: declared paths and globs and
`artifact NAME PATH` report lines are uploaded before the task succeeds,
listed by `trainyard artifacts`, fetched by `trainyard get` with their
sha256 checked, stored once per content; a missing output, a path that
leaves the attempt directory and an artifact over the size limit fail the
task with the reason.  One cluster serves every test here (none disturbs
it)."""
import glob
import hashlib
import json
import os
import subprocess

import pytest

from conftest import ROOT, running_cluster, task, wait_until

MAX_ARTIFACT = 8_000_000
MAX_RUN = 14_000_000


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("artifacts")) as c:
        c.start_master("--max-artifact-bytes", str(MAX_ARTIFACT),
                       "--max-run-artifact-bytes", str(MAX_RUN))
        c.start_worker("w1", "--labels", "zone=a")
        c.start_worker("w2", "--labels", "zone=b")
        c.wait_workers(["w1", "w2"])
        yield c


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_dir(c):
    return os.path.join(c.tmp, "master", "store")


def run_pipeline(c, name, text):
    run = c.submit(text, name=name + ".yaml")
    return run, c.wait_run(run)


def test_outputs_are_stored_listed_and_fetched(shared):
    c = shared
    # model.bin: 2.9 MB over several chunks; two plots by glob; notes by a
    # report line; twin.bin has model.bin's content (stored once)
    run, st = run_pipeline(c, "outs", """
name: outs
tasks:
  - name: make
    resources: {labels: {zone: a}}
    outputs: [model.bin, "plots/*.png", twin.bin]
    command:
      - sh
      - -c
      - |
        seq 1 400000 > model.bin && cp model.bin twin.bin
        mkdir -p plots notes && echo a > plots/a.png && echo b > plots/b.png
        echo hello > notes/n.txt
        echo "artifact notes notes/n.txt" >> "$TRAINYARD_REPORT"
""")
    assert st["state"] == "succeeded", st
    arts = c.json("artifacts", run)
    got = {a["name"]: a for a in arts}
    assert set(got) == {"model.bin", "plots/a.png", "plots/b.png", "twin.bin", "notes"}
    attempt_dir = os.path.join(c.tmp, "work-w1", run, "make", "1")  # zone=a
    for name, rel in [("model.bin", "model.bin"), ("plots/a.png", "plots/a.png"),
                      ("notes", "notes/n.txt")]:
        path = os.path.join(attempt_dir, rel)
        assert got[name]["sha256"] == sha256_of(path), name
        assert got[name]["size"] == os.path.getsize(path)
        assert got[name]["task"] == "make" and got[name]["worker"] == "w1"
    assert got["twin.bin"]["sha256"] == got["model.bin"]["sha256"]
    # one file per content in the store, nothing left in its tmp/
    sha = got["model.bin"]["sha256"]
    blob = os.path.join(store_dir(c), "sha256", sha[:2], sha)
    assert sha256_of(blob) == sha
    blobs = glob.glob(os.path.join(store_dir(c), "sha256", "*", "*"))
    assert len(blobs) == len({a["sha256"] for a in arts}) == 4
    assert os.listdir(os.path.join(store_dir(c), "tmp")) == []
    # status carries them too
    assert len(task(c.json("status", run), "make")["outputs"]) == 5
    # fetched back, checked
    dest = os.path.join(c.tmp, "fetched.bin")
    r = c.cli("get", run, "make/model.bin", "-o", dest)
    assert sha in r.stdout
    assert sha256_of(dest) == sha
    assert not os.path.exists(dest + ".part")
    r = c.cli("get", run, "make/plots/b.png", "-o", os.path.join(c.tmp, "b.png"))
    with open(os.path.join(c.tmp, "b.png")) as f:
        assert f.read() == "b\n"
    table = c.cli("artifacts", run).stdout
    assert "model.bin" in table and sha[:12] in table
    bad = c.cli("get", run, "make/nosuch.bin", check=False)
    assert bad.returncode == 1
    assert f"run {run} has no output make/nosuch.bin" in bad.stderr


def test_a_missing_output_fails_the_task_with_its_name(shared):
    run, st = run_pipeline(shared, "missing", """
name: missing
tasks:
  - name: train
    command: ["true"]
    outputs: [fashion.model]
  - name: evaluate
    inputs: {model: train/fashion.model}
    trigger_rule: all_done
    command: ["true"]
  - name: plots
    command: [sh, -c, "mkdir -p plots"]
    outputs: ["plots/*.png"]
""")
    assert st["state"] == "failed"
    assert task(st, "train")["state"] == "failed"
    assert task(st, "train")["reason"] == "output fashion.model not found"
    assert task(st, "plots")["reason"] == "output plots/*.png not found"
    # its consumer ran under all_done: the input was never produced
    assert task(st, "evaluate")["state"] == "failed"
    assert task(st, "evaluate")["reason"] == "input model: train/fashion.model was not produced"
    assert shared.json("artifacts", run) == []


def test_outputs_that_leave_the_attempt_directory_are_refused(shared, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the store\n")
    run, st = run_pipeline(shared, "escape", f"""
name: escape
tasks:
  - name: link
    command: [sh, -c, "ln -s {secret} leak.txt"]
    outputs: [leak.txt]
  - name: reported
    command: [sh, -c, "echo 'artifact stolen {secret}' >> $TRAINYARD_REPORT"]
  - name: climbing
    command: [sh, -c, "echo 'artifact up ../../x' >> $TRAINYARD_REPORT"]
""")
    assert st["state"] == "failed"
    assert "leak.txt is refused: it resolves outside the attempt directory" in \
        task(st, "link")["reason"]
    assert f"artifact stolen is refused: {secret} is outside" in task(st, "reported")["reason"]
    assert "artifact up" in task(st, "climbing")["reason"]
    want = hashlib.sha256(secret.read_bytes()).hexdigest()
    assert not glob.glob(os.path.join(store_dir(shared), "sha256", want[:2], want))
    # and at validate time, with the file's line
    path = shared.write("bad-outputs.yaml",
                        "name: bad\ntasks:\n  - name: a\n    command: ['true']\n"
                        "    outputs:\n      - ok.bin\n      - ../escape\n")
    r = shared.cli("validate", path, check=False)
    assert r.returncode != 0
    assert "bad-outputs.yaml:7: output '../escape' has a . or .. component" in r.stderr


def test_an_artifact_over_the_limit_fails_with_the_limit_named(shared):
    run, st = run_pipeline(shared, "big", f"""
name: big
tasks:
  - name: huge
    command: [sh, -c, "head -c {MAX_ARTIFACT + 1} /dev/zero > huge.bin"]
    outputs: [huge.bin]
""")
    assert st["state"] == "failed"
    reason = task(st, "huge")["reason"]
    assert f"is {MAX_ARTIFACT + 1} bytes, over the master's --max-artifact-bytes" in reason
    assert os.listdir(os.path.join(store_dir(shared), "tmp")) == []
    # each under the artifact limit, together over the run's
    n = MAX_ARTIFACT - 1000
    run, st = run_pipeline(shared, "many", f"""
name: many
tasks:
  - name: one
    command: [sh, -c, "head -c {n} /dev/urandom > one.bin"]
    outputs: [one.bin]
  - name: two
    depends_on: [one]
    command: [sh, -c, "head -c {n} /dev/urandom > two.bin"]
    outputs: [two.bin]
""")
    assert task(st, "one")["state"] == "succeeded"
    assert task(st, "two")["state"] == "failed"
    assert f"over the master's --max-run-artifact-bytes {MAX_RUN}" in task(st, "two")["reason"]


def test_a_worker_killed_mid_upload_leaves_no_artifact_and_no_temporary_file(cluster):
    """kill -9 of the worker while it uploads; the restarted worker runs the
    task again (new content) and its upload commits: the store holds that
    one blob, and nothing is left in its tmp/."""
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("""
name: killed
tasks:
  - name: big
    command: [sh, -c, "head -c 200000000 /dev/urandom > big.bin"]
    outputs: [big.bin]
""", name="killed.yaml")
    tmp = os.path.join(store_dir(cluster), "tmp")

    def uploading():
        files = os.listdir(tmp) if os.path.isdir(tmp) else []
        return files and os.path.getsize(os.path.join(tmp, files[0])) > 0
    wait_until(uploading, 60, "the upload to start")
    cluster.workers["w1"].kill()
    cluster.start_worker("w1")
    st = cluster.wait_run(run, timeout=120)
    assert st["state"] == "succeeded", st
    assert task(st, "big")["attempt"] == 2
    [art] = cluster.json("artifacts", run)
    blobs = glob.glob(os.path.join(store_dir(cluster), "sha256", "*", "*"))
    assert [os.path.basename(b) for b in blobs] == [art["sha256"]]
    assert os.path.getsize(blobs[0]) == 200_000_000
    wait_until(lambda: os.listdir(tmp) == [], 10, "the first upload's file to go")



def test_inputs_pass_files_between_steps_on_different_workers(shared):
    """prep on w1 -> train on w2 -> eval on w1: each step gets its upstream
    output by content, through the master's store and the host's cache."""
    c = shared
    run, st = run_pipeline(c, "handoff", """
name: handoff
tasks:
  - name: prep
    resources: {labels: {zone: a}}
    command: [sh, -c, "seq 1 300000 > clean.csv"]
    outputs: [clean.csv]
  - name: train
    resources: {labels: {zone: b}}
    inputs: {data: prep/clean.csv}
    command: [sh, -c, "sha256sum {{ inputs.data }} | cut -d' ' -f1 > seen.txt && sort -r {{ inputs.data }} > model.bin"]
    outputs: [model.bin, seen.txt]
  - name: eval
    resources: {labels: {zone: a}}
    inputs: {model: train/model.bin}
    command: [sh, -c, "echo {{ inputs.model }} > where.txt && sha256sum {{ inputs.model }} | cut -d' ' -f1 > used.txt"]
    outputs: [used.txt, where.txt]
""")
    assert st["state"] == "succeeded", st
    assert [task(st, t)["worker"] for t in ("prep", "train", "eval")] == ["w1", "w2", "w1"]
    arts = {(a["task"], a["name"]): a for a in c.json("artifacts", run)}

    def text(t, name):
        out = os.path.join(c.tmp, f"{t}-{name}")
        c.cli("get", run, f"{t}/{name}", "-o", out)
        with open(out) as f:
            return f.read().strip()
    assert text("train", "seen.txt") == arts[("prep", "clean.csv")]["sha256"]
    assert text("eval", "used.txt") == arts[("train", "model.bin")]["sha256"]
    assert text("eval", "where.txt") == "inputs/model/model.bin"
    # w2 keeps what it fetched, by content, for the next step that needs it
    data_sha = arts[("prep", "clean.csv")]["sha256"]
    assert sha256_of(os.path.join(c.tmp, "work-w2", ".cache", "sha256", data_sha)) == data_sha


TRAIN_PY = """
import os
import random
import trainyard_report as ty
lr = float(os.environ["LR"])
random.seed(1)
xs = [random.uniform(-1, 1) for _ in range(200)]
ys = [3 * x + 0.5 for x in xs]
w = b = 0.0
ty.set_tag("optimizer", "sgd")
ty.set_tag("lr", str(lr))
for epoch in range(5):
    gw = sum(2 * (w * x + b - y) * x for x, y in zip(xs, ys)) / len(xs)
    gb = sum(2 * (w * x + b - y) for x, y in zip(xs, ys)) / len(xs)
    w, b = w - lr * gw, b - lr * gb
    loss = sum((w * x + b - y) ** 2 for x, y in zip(xs, ys)) / len(xs)
    ty.log_metric("loss", loss, step=epoch)
    ty.set_progress((epoch + 1) / 5, "epoch %d/5" % (epoch + 1))
open("w.txt", "w").write("%r %r" % (w, b))
ty.log_artifact("weights", "w.txt")
"""


def test_metric_history_tags_and_compare(shared):
    """A Python loop reports through python/trainyard_report.py: every point
    of its loss is kept (not only the latest), its tags too, and two runs
    with different params compare side by side."""
    c = shared
    script = c.write("train_loop.py", TRAIN_PY)
    runs = []
    for lr in ("0.1", "0.05"):
        runs.append(c.submit(f"""
name: loop
params: {{lr: "0.1"}}
tasks:
  - name: train
    env: {{PYTHONPATH: {os.path.join(ROOT, "python")}, LR: "{{{{ params.lr }}}}"}}
    command: [/usr/bin/python3, {script}]
""", f"lr={lr}", name="loop.yaml"))
    for run in runs:
        assert c.wait_run(run)["state"] == "succeeded", c.cli("logs", run, "train").stdout
    series = c.json("metrics", runs[0])
    [loss] = [s for s in series if s["name"] == "loss"]
    assert (loss["task"], loss["attempt"]) == ("train", 1)
    assert [p["step"] for p in loss["points"]] == [0, 1, 2, 3, 4]
    values = [p["value"] for p in loss["points"]]
    assert values == sorted(values, reverse=True) and values[0] > values[-1]
    st = c.json("status", runs[0])
    t = task(st, "train")
    assert t["metrics"]["loss"]["value"] == values[-1]
    assert t["tags"] == {"optimizer": "sgd", "lr": "0.1"}
    assert t["progress_text"] == "epoch 5/5"
    assert [a["name"] for a in c.json("artifacts", runs[0])] == ["weights"]
    plot = c.cli("metrics", runs[0], "train", "--plot").stdout
    assert "train#1 loss: 5 points, steps 0..4" in plot and "*" in plot
    table = c.cli("metrics", runs[0]).stdout
    assert "loss" in table and "5" in table
    cmp = c.json("compare", *runs)
    rows = {(r["kind"], r["name"]): r for r in cmp["rows"]}
    assert rows[("param", "lr")]["values"] == ["0.1", "0.05"] and rows[("param", "lr")]["differs"]
    assert rows[("tag", "train.optimizer")]["values"] == ["sgd", "sgd"]
    assert not rows[("tag", "train.optimizer")]["differs"]
    assert rows[("metric", "train.loss")]["differs"]
    text = c.cli("compare", *runs).stdout
    assert "* param" in text and "(* differs)" in text
    bad = c.cli("metrics", "no-such-run", check=False)
    assert bad.returncode == 1 and "no metric history for run 'no-such-run'" in bad.stderr


TORCH_PY = """
import torch
import trainyard_report as ty
torch.manual_seed(0)
x = torch.randn(256, 4)
y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
ty.set_tag("framework", "pytorch " + torch.__version__)
for epoch in range(3):
    for i in range(0, 256, 32):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x[i:i + 32]), y[i:i + 32])
        loss.backward()
        opt.step()
    with torch.no_grad():
        full = torch.nn.functional.mse_loss(model(x), y).item()
    ty.log_metric("loss", full, step=epoch + 1)
torch.save(model.state_dict(), "model.pt")
ty.log_artifact("model", "model.pt")
ty.register_model("torch-linear", "model")
"""


def test_a_pytorch_loop_reports_through_the_helper(shared):
    """python/trainyard_report.py in a PyTorch training loop (Debian's
    python3-torch): three epochs of loss, a tag and the saved model."""
    c = shared
    r = __import__("subprocess").run(["/usr/bin/python3", "-c", "import torch"],
                                     capture_output=True)
    if r.returncode != 0:
        pytest.skip("python3-torch is not installed (scripts/install-deps.sh installs it)")
    script = c.write("torch_loop.py", TORCH_PY)
    run = c.submit(f"""
name: torchloop
tasks:
  - name: fit
    env: {{PYTHONPATH: {os.path.join(ROOT, "python")}, OMP_NUM_THREADS: "1"}}
    command: [/usr/bin/python3, {script}]
""", name="torchloop.yaml")
    st = c.wait_run(run, timeout=180)
    assert st["state"] == "succeeded", c.cli("logs", run, "fit").stdout
    [loss] = [s for s in c.json("metrics", run) if s["name"] == "loss"]
    assert [p["step"] for p in loss["points"]] == [1, 2, 3]
    assert loss["points"][-1]["value"] < loss["points"][0]["value"]
    assert task(st, "fit")["tags"]["framework"].startswith("pytorch ")
    [model] = c.json("artifacts", run)
    assert model["name"] == "model" and model["size"] > 0
    v = c.json("models", "show", "torch-linear")  # registered by the helper's line
    assert (v["run_id"], v["artifact"], v["sha256"]) == (run, "model", model["sha256"])
    assert v["metrics"]["loss"] == loss["points"][-1]["value"]


def test_retry_runs_what_failed_and_takes_the_rest(shared, tmp_path):
    """A run whose train step failed: `trainyard retry` runs train and what
    follows again and takes prep from the failed run (cached, its output
    handed on, its command not run again); --from names where to start."""
    c = shared
    flag, count = tmp_path / "flag", tmp_path / "prep-count"
    run, st = run_pipeline(c, "retry", f"""
name: retry
tasks:
  - name: prep
    command: [sh, -c, "echo run >> {count} && seq 1 1000 > data.csv"]
    outputs: [data.csv]
  - name: train
    inputs: {{data: prep/data.csv}}
    command: [sh, -c, "test -f {flag} && wc -l < {{{{ inputs.data }}}} > model.txt"]
    outputs: [model.txt]
  - name: eval
    inputs: {{model: train/model.txt}}
    command: [sh, -c, "cat {{{{ inputs.model }}}}"]
""")
    assert st["state"] == "failed" and task(st, "train")["state"] == "failed"
    bad = c.cli("retry", run, "--from", "nosuch", check=False)
    assert bad.returncode == 1 and "has no task 'nosuch'" in bad.stderr
    flag.write_text("")
    r = c.cli("retry", run, "--wait", "-o", "json", check=False)
    st2 = json.loads(r.stdout)
    assert st2["state"] == "succeeded", st2
    run2 = st2["run_id"]
    assert run2 != run
    prep = task(st2, "prep")
    assert prep["state"] == "cached" and prep["reason"] == f"from run {run}"
    assert count.read_text() == "run\n"  # prep's command ran once, in the first run
    assert c.cli("logs", run2, "eval").stdout.strip() == "1000"
    arts = {(a["task"], a["name"]): a["sha256"] for a in c.json("artifacts", run2)}
    old = {(a["task"], a["name"]): a["sha256"] for a in c.json("artifacts", run)}
    assert arts[("prep", "data.csv")] == old[("prep", "data.csv")]
    # every task of run2 succeeded: a retry needs --from
    bad = c.cli("retry", run2, check=False)
    assert bad.returncode == 1 and "--from TASK" in bad.stderr
    run3 = c.cli("retry", run2, "--from", "prep").stdout.strip()
    st3 = c.wait_run(run3)
    assert st3["state"] == "succeeded"
    assert [task(st3, t)["state"] for t in ("prep", "train", "eval")] == ["succeeded"] * 3
    assert count.read_text() == "run\nrun\n"


def test_lineage_pin_and_gc(cluster):
    """lineage finds who produced and consumed some content; gc deletes the
    blobs no kept run refers to (--dry-run only lists them); a pinned run
    keeps its outputs."""
    c = cluster
    c.start_master("--gc-grace-s", "0")
    c.start_worker("w1")
    c.wait_workers(["w1"])
    run_a, st = run_pipeline(c, "gca", """
name: gca
tasks:
  - name: make
    command: [sh, -c, "echo alpha > a.bin"]
    outputs: [a.bin]
  - name: use
    inputs: {a: make/a.bin}
    command: [cat, "{{ inputs.a }}"]
""")
    assert st["state"] == "succeeded"
    run_b, st = run_pipeline(c, "gcb", """
name: gcb
tasks:
  - name: make
    command: [sh, -c, "echo beta > b.bin"]
    outputs: [b.bin]
""")
    assert st["state"] == "succeeded"
    sha_a = c.json("artifacts", run_a)[0]["sha256"]
    [b] = c.json("artifacts", run_b)
    sha_b = b["sha256"]
    lin = c.json("lineage", sha_a[:12])
    assert {(e["run_id"], e["task"], e["role"], e["name"]) for e in lin} == {
        (run_a, "make", "produced", "a.bin"), (run_a, "use", "consumed", "a")}
    bad = c.cli("lineage", "xyz", check=False)
    assert bad.returncode == 1 and "lineage needs 4 to 64 lower-case hex digits" in bad.stderr
    assert "pinned" in c.cli("pin", run_a).stdout
    bad = c.cli("pin", "no-such-run", check=False)
    assert bad.returncode == 1 and "no such run" in bad.stderr

    def blob(sha):
        return os.path.join(store_dir(c), "sha256", sha[:2], sha)
    # every run in etcd is kept without --keep-days
    assert c.json("gc")["blobs_deleted"] == 0
    dry = c.json("gc", "--keep-days", "0", "--dry-run")
    assert dry["dry_run"] and dry["deleted"] == [sha_b] and os.path.exists(blob(sha_b))
    done = c.json("gc", "--keep-days", "0")
    assert done["deleted"] == [sha_b] and done["bytes_freed"] == b["size"]
    assert not os.path.exists(blob(sha_b)) and os.path.exists(blob(sha_a))
    gone = c.cli("get", run_b, "make/b.bin", "-o", os.path.join(c.tmp, "b"), check=False)
    assert gone.returncode == 1 and "no artifact with sha256" in gone.stderr
    c.cli("pin", run_a, "--unpin")
    assert c.json("gc", "--keep-days", "0")["deleted"] == [sha_a]
    assert "deleted 0 blobs" in c.cli("gc", "--keep-days", "0").stdout


def test_the_step_cache_reuses_a_success_and_says_why_it_missed(cluster, tmp_path):
    """cache: true: the second run of the same step is not run (cached, the
    same output); a changed command misses and says so; once gc has
    collected the blob, the step runs again."""
    c = cluster
    c.start_master("--gc-grace-s", "0")
    c.start_worker("w1")
    c.wait_workers(["w1"])
    count = tmp_path / "count"

    def pipeline(word):
        return f"""
name: cached
cache: true
tasks:
  - name: prep
    command: [sh, -c, "echo run >> {count} && echo {word} > data.txt"]
    outputs: [data.txt]
  - name: use
    cache: false
    inputs: {{d: prep/data.txt}}
    command: [cat, "{{{{ inputs.d }}}}"]
"""
    run1, st = run_pipeline(c, "cached", pipeline("hello"))
    assert st["state"] == "succeeded"
    assert task(st, "prep")["cache"] == "cache miss: no earlier success of this task"
    run2, st = run_pipeline(c, "cached", pipeline("hello"))
    assert st["state"] == "succeeded"
    prep = task(st, "prep")
    assert prep["state"] == "cached" and prep["cache"] == f"cache hit: run {run1}"
    assert count.read_text() == "run\n"  # not run the second time
    assert c.cli("logs", run2, "use").stdout == "hello\n"
    assert task(st, "use")["cache"] is None  # cache: false overrides the pipeline's
    run3, st = run_pipeline(c, "cached", pipeline("other"))
    assert task(st, "prep")["cache"] == f"cache miss: since run {run1}, command changed"
    assert count.read_text() == "run\nrun\n"
    def cache_keys():
        out = subprocess.run(["etcdctl", "--endpoints", c.etcd_url, "get", "--prefix",
                              "--keys-only", "/trainyard/cache/"],
                             capture_output=True, text=True, check=True).stdout
        return [k for k in out.split() if k]
    assert len(cache_keys()) == 2  # "hello" and "other"
    # the blobs are collected: gc forgets the cache entries that named them
    assert c.json("gc", "--keep-days", "0")["blobs_deleted"] >= 2
    wait_until(lambda: cache_keys() == [], timeout=10, what="cache/ records deleted")
    run4, st = run_pipeline(c, "cached", pipeline("hello"))
    assert st["state"] == "succeeded"
    assert task(st, "prep")["cache"] == "cache miss: no earlier success of this task"
    assert count.read_text() == "run\nrun\nrun\n"
    assert c.cli("logs", run4, "use").stdout == "hello\n"
