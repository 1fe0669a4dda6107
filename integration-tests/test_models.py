"""The model registry and the promotion gate on a real cluster (issue 18,
points 4 and 5)."""
import hashlib
import json
import os

import pytest

from conftest import running_cluster, task

TRAIN = """
name: trainer
params: {acc: "0.8"}
tasks:
  - name: train
    outputs: [model.bin]
    command:
      - sh
      - -c
      - |
        echo "weights {{ params.acc }}" > model.bin
        echo "metric accuracy {{ params.acc }}" >> "$TRAINYARD_REPORT"
        echo "register fashion model.bin" >> "$TRAINYARD_REPORT"
"""


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("models")) as c:
        c.start_master("--gc-grace-s", "0")
        c.start_worker("w1")
        c.wait_workers(["w1"])
        yield c


def test_registry_versions_aliases_history_get_and_gc(shared, tmp_path):
    """A step's `register` line makes version 1 (with its run, params and
    metrics); `models register` makes version 2 from a run's output; alias
    moves are kept with who and when; `models get` checks the sha256; gc
    keeps a registered version's blob after its run is collected; bad
    references get one clear line."""
    c = shared
    run1 = c.submit(TRAIN)
    assert c.wait_run(run1)["state"] == "succeeded"
    lst = c.json("models", "list")
    assert [(m["name"], m["last_version"]) for m in lst] == [("fashion", 1)]
    v1 = c.json("models", "show", "fashion")
    art = {a["task"] + "/" + a["name"]: a for a in c.json("artifacts", run1)}["train/model.bin"]
    assert (v1["version"], v1["run_id"], v1["task"], v1["artifact"], v1["sha256"]) == \
        (1, run1, "train", "model.bin", art["sha256"])
    assert v1["metrics"] == {"accuracy": 0.8} and v1["params"] == {"acc": "0.8"}
    assert v1["by"] == f"{run1}/train"

    run2 = c.submit(TRAIN, "acc=0.9")
    assert c.wait_run(run2)["state"] == "succeeded"  # version 2, from its line
    v3 = c.json("models", "register", "fashion", "--from", f"{run2}/train/model.bin",
                "--metric", "f1=0.7", "--tag", "stage=manual")
    assert (v3["version"], v3["metrics"], v3["tags"]) == \
        (3, {"f1": 0.7, "accuracy": 0.9}, {"stage": "manual"})
    # with keys, who registered is their key's user (the tests': tester), not $USER
    user = "tester" if c.curve else (os.environ.get("USER") or "root")
    assert v3["by"] == user
    text = c.cli("models", "list", "fashion").stdout
    assert len(text.strip().splitlines()) == 4  # a header and three versions

    # the gate: no champion yet, then not better by the margin, then better
    r = c.cli("models", "promote", "fashion", "1", "--alias", "champion", "--metric",
              "accuracy", check=False)
    assert r.returncode == 0 and "champion   none yet" in r.stdout, r.stdout + r.stderr
    r = c.cli("models", "promote", "fashion", "2", "--alias", "champion", "--metric",
              "accuracy", "--min-delta", "0.2", check=False)
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.splitlines()[:3] == [
        "candidate  fashion version 2: accuracy 0.9",
        "champion   fashion version 1: accuracy 0.8",
        "not promoted: accuracy 0.9 against 0.8 of version 1 (higher is better; better by "
        "0.1, at least 0.2 needed)"]
    p = c.json("models", "promote", "fashion", "2", "--alias", "champion", "--metric",
               "accuracy", check=False)
    assert (p["promoted"], p["candidate"], p["current"], p["current_version"]) == \
        (True, 0.9, 0.8, 1)
    r = c.cli("models", "promote", "fashion", "1", "--alias", "champion", "--metric", "accuracy",
              "--lower-is-better", check=False)
    assert r.returncode == 0 and "promoted: accuracy 0.8 against 0.9" in r.stdout
    c.cli("models", "alias", "fashion", "champion", "2")
    hist = c.json("models", "history", "fashion")
    assert [(h["alias"], h["from_version"], h["to_version"], h["by"]) for h in hist] == \
        [("champion", None, 1, user), ("champion", 1, 2, user), ("champion", 2, 1, user),
         ("champion", 1, 2, user)]
    assert hist[3]["note"] == "set by hand" and hist[1]["note"].startswith("promoted: ")
    assert c.json("models", "show", "fashion@champion")["version"] == 2

    out = tmp_path / "champion.bin"
    got = c.cli("models", "get", "fashion@champion", "-o", str(out)).stdout
    assert out.read_bytes() == b"weights 0.9\n"
    assert got.split("\t")[2].strip() == "sha256 " + hashlib.sha256(out.read_bytes()).hexdigest()

    # gc: the runs are gone from its view (keep-days 0), the versions' blobs stay
    freed = c.json("gc", "--keep-days", "0")
    assert v1["sha256"] not in freed["deleted"] and v3["sha256"] not in freed["deleted"]
    out2 = tmp_path / "v1.bin"
    c.cli("models", "get", "fashion:1", "-o", str(out2))
    assert out2.read_bytes() == b"weights 0.8\n"

    def refused(args, want):
        r = c.cli(*args, check=False)
        assert r.returncode not in (0, 3) and want in r.stderr, (args, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    refused(["models", "show", "nope"], "no model named 'nope'")
    refused(["models", "show", "fashion:9"], "model fashion has no version 9 (its last is 3)")
    refused(["models", "show", "fashion@staging"], "model fashion has no alias 'staging'")
    refused(["models", "register", "Bad", "--from", f"{run1}/train/model.bin"],
            "model name 'Bad' must match")
    refused(["models", "register", "fashion", "--from", f"{run1}/train/other"],
            "has no output 'other'")
    refused(["models", "register", "fashion", "--from", "nope-1/train/x"], "no such run")
    refused(["models", "promote", "fashion", "1", "--alias", "champion", "--metric", "loss"],
            "version 1 of fashion has no metric 'loss'")
    refused(["models", "alias", "fashion", "7", "1"], "must not be a number")
    assert c.json("models", "list", "fashion")[-1]["version"] == 3  # nothing lost


def test_a_register_line_naming_no_output_fails_the_step(shared):
    c = shared
    run = c.submit("name: bad-reg\ntasks:\n  - name: t\n    command: [sh, -c, "
                   "\"echo 'register other missing.bin' >> $TRAINYARD_REPORT\"]\n")
    st = c.wait_run(run)
    assert st["state"] == "failed"
    assert task(st, "t")["reason"].startswith("register other: missing.bin is not an output of t")
    assert "other" not in [m["name"] for m in c.json("models", "list")]
    assert json.loads(c.cli("models", "list", "-o", "json").stdout)  # fashion is still there


def test_the_retraining_loop_closes(cluster, tmp_path):
    """examples/pipelines/retrain.yaml on a schedule, the master's clock
    shifted (libfaketime): three daily fires, the data drifting from the
    second on.  Run 1 trains, registers and promotes version 1; run 2 finds
    the drift against the champion's data, retrains (two MPI ranks), and the
    gate promotes version 2, which beats version 1 on the same held-out
    data; run 3 finds no drift against version 2's data and skips the
    retraining.  Every run succeeds; the history shows both promotions."""
    from conftest import faketime_env
    from test_schedules import set_clock, stored_runs
    from conftest import wait_until
    c = cluster
    clock = tmp_path / "clock"
    set_clock(clock, "2026-01-01 02:00:00")
    c.master_env = faketime_env(clock)
    c.start_master()
    c.start_worker("w1", "--cpus", "2")
    c.wait_workers(["w1"])
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples", "pipelines", "retrain.yaml")
    base = ["schedules", "add", "retrain", path, "--cron", "0 3 * * *",
            "-p", f"master={c.client_ep}", "-p", "model=loop", "-p", "rows=3000"]
    c.cli(*base)
    runs = []
    for day, shift in ((1, "0"), (2, "1.5"), (3, "1.5")):
        if day == 2:  # the data drifts from now on: the schedule's params change
            assert not c.json(*base, "-p", "shift=1.5")["created"]
        set_clock(clock, f"2026-01-0{day} 02:59:59")
        run = f"retrain-2026010{day}-0300"
        wait_until(lambda: run in stored_runs(c, "retrain-"), 20, f"the fire of day {day}")
        st = c.wait_run(run, timeout=180)
        assert st["state"] == "succeeded", (day, [(t["name"], t["state"], t["reason"])
                                                  for t in st["tasks"]])
        runs.append(st)
    states = [{t["name"]: t["state"] for t in st["tasks"]} for st in runs]
    assert states[0] == states[1] == {"data": "succeeded", "drift": "succeeded",
                                      "train": "succeeded", "evaluate": "succeeded",
                                      "promote": "succeeded"}
    assert states[2] == {"data": "succeeded", "drift": "succeeded", "train": "skipped",
                         "evaluate": "skipped", "promote": "skipped"}
    assert task(runs[1], "drift")["metrics"]["drift"]["value"] == 1
    assert task(runs[2], "drift")["metrics"]["drift"]["value"] == 0
    assert task(runs[2], "train")["reason"].startswith("skipped: when drift.drift > 0")
    v2 = c.json("models", "show", "loop:2")
    assert v2["run_id"] == runs[1]["run_id"]
    assert v2["metrics"]["accuracy"] > v2["metrics"]["champion_accuracy"] + 0.2, v2["metrics"]
    hist = c.json("models", "history", "loop")
    assert [(h["from_version"], h["to_version"]) for h in hist] == [(None, 1), (1, 2)]
    assert all(h["note"].startswith("promoted: ") for h in hist)
    assert c.json("models", "show", "loop@champion")["version"] == 2
    assert c.json("models", "list")[0]["last_version"] == 2
