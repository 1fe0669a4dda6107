"""Runs through the real cluster: ordering, params, placement, logs, listings."""
import json
import os
import re
import time

from conftest import task

DIAMOND = """
name: diamond
params: {word: plain}
tasks:
  - name: a
    command: ["sh", "-c", "echo a-{{ params.word }}"]
  - name: b
    depends_on: [a]
    command: "sleep 0.2; echo b"
  - name: c
    depends_on: [a]
    command: ["sh", "-c", "sleep 0.1; echo c"]
  - name: d
    depends_on: [b, c]
    command: ["sh", "-c", "echo d"]
"""


def test_diamond_runs_in_dependency_order(cluster):
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "2")
    cluster.start_worker("w2", "--cpus", "2")
    cluster.wait_workers(["w1", "w2"])
    run = cluster.submit(DIAMOND, "word=fancy")
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    assert st["params"] == {"word": "fancy"}
    a, b, c, d = (task(st, n) for n in "abcd")
    for t in (a, b, c, d):
        assert t["state"] == "succeeded"
        assert t["attempt"] == 1
        assert t["exit_code"] == 0
        assert t["worker"] in ("w1", "w2")
    assert a["finished_at"] <= b["started_at"]
    assert a["finished_at"] <= c["started_at"]
    assert b["finished_at"] <= d["started_at"]
    assert c["finished_at"] <= d["started_at"]
    # params are substituted into commands
    assert cluster.cli("logs", run, "a").stdout == "a-fancy\n"
    assert cluster.cli("logs", run, "d", "-f").stdout == "d\n"


def test_listings_and_report_lines(cluster):
    cluster.start_master()
    cluster.start_worker("w1", "--labels", "zone=a,disk=ssd")
    cluster.wait_workers(["w1"])
    run = cluster.submit("""
name: reporter
tasks:
  - name: train
    command: |
      echo "metric loss 0.5 1" >> "$TRAINYARD_REPORT"
      echo "metric loss 0.25 2" >> "$TRAINYARD_REPORT"
      echo "not a report line" >> "$TRAINYARD_REPORT"
      echo "progress 0.75 epoch 3/4" >> "$TRAINYARD_REPORT"
      printf 'metric acc 0.05' >> "$TRAINYARD_REPORT"
      echo "run=$TRAINYARD_RUN_ID task=$TRAINYARD_TASK attempt=$TRAINYARD_ATTEMPT"
      echo oops >&2
""")
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded"
    t = task(st, "train")
    assert t["metrics"]["loss"] == {"value": 0.25, "step": 2}
    assert t["metrics"]["acc"]["value"] == 0.05
    # floats with the fewest digits that read back the same
    raw = cluster.cli("status", run, "-o", "json").stdout
    assert '"value": 0.05,' in raw and "0.05000" not in raw, raw
    assert t["progress"] == 1.0  # a succeeded task shows complete
    assert t["progress_text"] == "epoch 3/4"
    logs = cluster.cli("logs", run, "train").stdout
    assert f"run={run} task=train attempt=1" in logs
    assert "oops" in logs
    table = cluster.cli("status", run).stdout
    assert "loss=0.25" in table and "succeeded" in table

    runs = cluster.json("runs")
    assert runs[0]["run_id"] == run and runs[0]["state"] == "succeeded"
    assert cluster.cli("runs", "-q").stdout == run + "\n"
    # pipelines, with their last run; a short prefix of a run id (or of its
    # hash) stands for it; one that matches several runs says which
    run2 = cluster.submit("name: reporter\ntasks:\n  - {name: train, command: [\"false\"]}\n")
    assert cluster.wait_run(run2)["state"] == "failed"
    other = cluster.submit("name: other\ntasks:\n  - {name: a, command: [\"true\"]}\n")
    cluster.wait_run(other)
    pipes = cluster.json("pipelines")
    assert [p["name"] for p in pipes] == ["other", "reporter"]  # the one run last first
    rep = pipes[1]
    assert (rep["runs"], rep["succeeded"], rep["failed"], rep["active"]) == (2, 1, 1, 0)
    assert rep["last_run"]["run_id"] == run2 and rep["last_run"]["state"] == "failed"
    assert "reporter" in cluster.cli("pipelines").stdout
    assert cluster.json("status", run[:-4])["run_id"] == run
    assert cluster.json("status", run.split("-")[-1][:5])["run_id"] == run
    assert cluster.cli("logs", other[:3], "a").returncode == 0
    # a follow by prefix asks the master many times: the prefix holds
    slow = cluster.submit("name: trickle\ntasks:\n  - name: t\n    command: 'for i in "
                          "$(seq 1 40); do echo line $i; sleep 0.05; done'\n")
    r = cluster.cli("logs", slow.split("-")[-1][:6], "t", "-f")
    assert r.stdout.splitlines() == [f"line {i}" for i in range(1, 41)], r.stdout + r.stderr
    r = cluster.cli("status", "rep", check=False)
    assert r.returncode == 1 and "'rep' matches several runs (" in r.stderr, r.stderr
    assert run in r.stderr and run2 in r.stderr
    r = cluster.cli("status", "nosuch", check=False)
    assert r.returncode == 1 and "no such run" in r.stderr, r.stderr
    # bash completion: commands, a command's flags and subcommands, run ids
    # from the master (the CLI given --master as typed on the line)
    import subprocess
    from conftest import CLI_BIN
    script = cluster.cli("completion", "bash").stdout

    def complete(*words):
        line = " ".join(words)
        r = subprocess.run(["bash", "-c", script + f"""
COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
[[ "{line}" == *" " ]] && COMP_WORDS+=("") && COMP_CWORD=$((COMP_CWORD + 1))
PATH="{os.path.dirname(CLI_BIN)}:$PATH"
_trainyard; printf '%s\\n' "${{COMPREPLY[@]}}"
"""], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert complete("trainyard", "sch") == ["schedules"]
    assert complete("trainyard", "runs", "--st") == ["--state"]
    assert "pause" in complete("trainyard", "schedules", "")
    assert sorted(complete("trainyard", "--master", cluster.client_ep, "status", "")) == \
        sorted([run, run2, other, slow])
    assert complete("trainyard", "--master", cluster.client_ep, "logs", "oth") == [other]
    assert runs[0]["pipeline"] == "reporter"
    ws = cluster.json("workers")
    assert len(ws) == 1
    w = ws[0]
    for key in ("id", "state", "cpus", "mem_mb", "gpus", "labels", "running"):
        assert key in w
    assert w["labels"] == {"zone": "a", "disk": "ssd"}
    assert w["state"] == "up" and w["running"] == 0


def test_gpu_and_label_placement(cluster):
    cluster.start_master()
    cluster.start_worker("cpu1", "--gpus", "0", "--cpus", "4")
    cluster.start_worker("gpu1", "--gpus", "2", "--cpus", "1", "--labels", "zone=b")
    cluster.wait_workers(["cpu1", "gpu1"])
    run = cluster.submit("""
name: placement
tasks:
  - name: gpu
    command: ["sh", "-c", "echo CVD=$CUDA_VISIBLE_DEVICES"]
    resources: {gpus: 1, cpus: 1}
  - name: zoned
    command: ["true"]
    resources: {labels: {zone: b}, cpus: 0.5}
  - name: cpu-a
    command: ["sh", "-c", "sleep 0.2"]
    resources: {cpus: 2}
  - name: cpu-b
    command: ["sh", "-c", "sleep 0.2"]
    resources: {cpus: 2}
""")
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    assert task(st, "gpu")["worker"] == "gpu1"
    assert task(st, "zoned")["worker"] == "gpu1"
    assert task(st, "cpu-a")["worker"] == "cpu1"
    assert task(st, "cpu-b")["worker"] == "cpu1"
    out = cluster.cli("logs", run, "gpu").stdout.strip()
    assert out in ("CVD=0", "CVD=1"), out


def test_submit_wait_and_master_address_sources(cluster, tmp_path):
    import subprocess
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    path = cluster.write("ok.yaml", "name: ok\ntasks:\n  - name: t\n    command: [\"true\"]\n")
    bad = cluster.write("bad.yaml", "name: bad\ntasks:\n  - name: t\n    retries: 1\n"
                        "    command: 'for i in $(seq 1 30); do echo line $i; done; exit 3'\n")
    r = cluster.cli("submit", path, "--wait")
    assert r.returncode == 0 and "succeeded" in r.stdout
    # off a terminal: a few count lines; the failed attempt and the failed
    # task each on a line of its own, then the task's reason and the last
    # 20 lines of its log
    r = cluster.cli("submit", bad, "--wait", "-o", "json", check=False)
    assert r.returncode == 1
    st = json.loads(r.stdout)
    assert st["state"] == "failed" and task(st, "t")["exit_code"] == 3
    err = r.stderr
    assert "task t: attempt 1 failed: exit code 3; it runs again\n" in err, err
    assert "task t failed: exit code 3 (attempt 2 on w1)\n" in err, err
    tail = err[err.index("; the end of its log:\n"):]
    assert "    line 11\n" in tail and "    line 30\n" in tail and "line 10\n" not in tail, err
    assert len(err.splitlines()) < 40 and "\r" not in err, err
    r = cluster.cli("logs", st["run_id"], "t", "--tail", "3")
    assert r.stdout == "line 28\nline 29\nline 30\n"
    # on a terminal 50 columns wide: one line redrawn within them
    import fcntl
    import pty
    import struct
    import termios
    from conftest import CLI_BIN
    mfd, sfd = pty.openpty()
    fcntl.ioctl(sfd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 50, 0, 0))
    slow = cluster.write("slow.yaml", "name: slow-with-a-long-pipeline-name\ntasks:\n" +
                         "".join(f"  - {{name: step-{i}, command: [sleep, '0.2']}}\n"
                                 for i in range(4)))
    p = subprocess.Popen([CLI_BIN, "--master", cluster.client_ep, "submit", slow, "--wait"],
                         stdin=sfd, stdout=subprocess.PIPE,
                         stderr=sfd, text=True)
    os.close(sfd)
    seen = b""
    while True:
        try:
            chunk = os.read(mfd, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        seen += chunk
    p.wait(timeout=60)
    os.close(mfd)
    assert p.returncode == 0, seen
    shown = seen.decode().replace("\r\n", "\n")
    assert "\r\x1b[K[" in shown and "succeeded: 4/4 tasks done, 4 succeeded" in shown, shown
    for draw in shown.replace("\n", "\r").split("\r"):
        assert len(draw.replace("\x1b[K", "")) <= 49, repr(draw)
    # colours on a terminal only, and not with NO_COLOR set
    def on_pty(*args, **env):
        mfd, sfd = pty.openpty()
        q = subprocess.Popen([CLI_BIN, "--master", cluster.client_ep, *args], stdin=sfd,
                             stdout=sfd, stderr=sfd, env={**os.environ, "TERM": "xterm", **env})
        os.close(sfd)
        got = b""
        while True:
            try:
                chunk = os.read(mfd, 4096)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        assert q.wait(timeout=30) == 0, got
        os.close(mfd)
        return got.decode()
    assert "\x1b[32msucceeded \x1b[0m" in on_pty("runs"), "no colour on a terminal"
    assert "\x1b[" not in on_pty("runs", NO_COLOR="1")
    assert "\x1b[" not in cluster.cli("runs").stdout  # not a terminal
    # --master flag and a config file, with TRAINYARD_MASTER unset
    env = {k: v for k, v in os.environ.items() if k != "TRAINYARD_MASTER"}
    r = subprocess.run([CLI_BIN, "--master", cluster.client_ep, "runs", "-o", "json"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0 and len(json.loads(r.stdout)) == 3
    cfg = tmp_path / "cfg"
    cfg.write_text(f"# trainyard\nmaster = {cluster.client_ep}\n")
    env["TRAINYARD_CONFIG"] = str(cfg)
    r = subprocess.run([CLI_BIN, "workers", "-o", "json"], capture_output=True, text=True,
                       env=env, timeout=30)
    assert r.returncode == 0 and json.loads(r.stdout)[0]["id"] == "w1"
    # unreachable master: one clear line, non-zero
    r = subprocess.run([CLI_BIN, "--master", "tcp://127.0.0.1:1", "--timeout", "1", "runs"], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "no answer from the master at tcp://127.0.0.1:1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_a_task_no_worker_can_hold_says_why_until_one_can(cluster):
    # an MPI step wider than any worker stays queued with its reason (as
    # Slurm's and Kubernetes' pending reasons), and runs once a worker big
    # enough registers
    # `submit --wait` says so too, on a line of its own
    import select
    import subprocess
    from conftest import CLI_BIN
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "2")
    cluster.wait_workers(["w1"])
    path = cluster.write("wide.yaml", "name: wide\ntasks:\n  - name: train\n    kind: mpi\n"
                         "    np: 4\n    resources: {cpus: 1}\n    command: [\"true\"]\n")
    p = subprocess.Popen([CLI_BIN, "--master", cluster.client_ep, "submit", path, "--wait"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        deadline = time.monotonic() + 20
        while "task train: no worker can run it" not in err:
            assert time.monotonic() < deadline, err
            if select.select([p.stderr], [], [], 1)[0]:
                err += p.stderr.readline()
        run = err.split("submitted ")[1].split()[0]
        version, why = 0, ""
        for _ in range(50):  # long-polls, each answered when the run changes
            st = cluster.json("status", run, "--wait-after", str(version))
            version, why = st["version"], task(st, "train")["reason"] or ""
            if why:
                break
        assert task(st, "train")["state"] == "queued"
        assert why.startswith("no worker can run it: it needs 4 CPUs (4 ranks); "
                              "the largest worker has 2 CPUs"), why
        assert "no worker can run it" in cluster.cli("status", run).stdout
        assert "it needs 4 CPUs (4 ranks); the largest worker has 2 CPUs" in err
        cluster.start_worker("w2", "--cpus", "4")
        out, rest = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0 and "succeeded: 1/1 tasks done" in rest, err + rest
    st = cluster.wait_run(run, timeout=60)
    assert st["state"] == "succeeded", st
    t = task(st, "train")
    assert t["worker"] == "w2" and t["reason"] is None


def test_a_drained_worker_takes_no_new_attempts(cluster, tmp_path):
    """`trainyard workers drain W`: the attempt W runs goes on to its end,
    new ones go elsewhere, the listing says so; undrain and it takes
    attempts again."""
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "1")
    cluster.start_worker("w2", "--cpus", "1")
    cluster.wait_workers(["w1", "w2"])
    flag = tmp_path / "go"
    run1 = cluster.submit(f"name: long\ntasks:\n  - name: a\n    command: "
                          f"'while [ ! -e {flag} ]; do sleep 0.05; done; echo done'\n")
    st = cluster.wait_task_state(run1, "a", ["running"])
    busy = task(st, "a")["worker"]
    free = "w2" if busy == "w1" else "w1"
    d = cluster.json("workers", "drain", busy)
    assert d == {"id": busy, "draining": True, "running": 1}
    ws = {w["id"]: w for w in cluster.json("workers")}
    assert ws[busy]["draining"] and not ws[free]["draining"]
    assert f"{busy:<20} draining" in cluster.cli("workers").stdout
    run2 = cluster.submit("name: two\ntasks:\n  - {name: b, command: [echo, b]}\n"
                          "  - {name: c, command: [echo, c]}\n", name="two.yaml")
    st2 = cluster.wait_run(run2)
    assert st2["state"] == "succeeded"
    assert [task(st2, t)["worker"] for t in "bc"] == [free, free]
    flag.touch()
    st1 = cluster.wait_run(run1)
    assert st1["state"] == "succeeded" and task(st1, "a")["attempt"] == 1
    assert task(st1, "a")["worker"] == busy
    assert cluster.json("workers", "undrain", busy)["draining"] is False
    assert not {w["id"]: w for w in cluster.json("workers")}[busy]["draining"]
    r = cluster.cli("workers", "drain", "nope", check=False)
    assert r.returncode == 1 and "no worker named 'nope'" in r.stderr


def test_a_pytorch_ddp_script_runs_unchanged_as_an_mpi_step(cluster):
    """examples/pipelines/ddp.yaml: every rank of a kind: mpi step gets
    MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK and
    LOCAL_WORLD_SIZE, so torch.distributed with init_method env:// (gloo)
    trains: both ranks end with the same parameters, rank 0's model is
    stored, its metric reported."""
    import pytest
    try:
        import torch  # noqa: F401  (Debian's python3-torch, as the step uses)
    except ImportError:
        pytest.skip("no python3-torch")
    from conftest import ROOT
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "2")
    cluster.wait_workers(["w1"])
    with open(os.path.join(ROOT, "examples", "pipelines", "ddp.yaml")) as f:
        text = f.read()
    script = os.path.join(ROOT, "examples", "ddp", "train_ddp.py")
    run = cluster.submit(text, f"script={script}", "epochs=3")
    st = cluster.wait_run(run, timeout=90)
    assert st["state"] == "succeeded", (st, cluster.cli("logs", run, "train").stdout)
    t = task(st, "train")
    assert t["metrics"]["accuracy"]["step"] == 3 and t["metrics"]["accuracy"]["value"] > 0.8
    assert [o["name"] for o in t["outputs"]] == ["model.pt"]
    log = cluster.cli("logs", run, "train").stdout
    for r in (0, 1):
        # gloo over loopback: both ranks are on this worker
        assert f"rank {r} of 2 (local {r} of 2) on cpu, rendezvous 127.0.0.1:" in log, log
    assert log.count("sockets on lo") == 2, log  # (two ranks' lines may interleave)
    digests = re.findall(r"rank \d parameters (\w+)", log)
    assert len(digests) == 2 and len(set(digests)) == 1, log  # the replicas agree


def test_runs_filters(cluster):
    """`trainyard runs` by pipeline, state, age and owner (issue 21)."""
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "2")
    cluster.wait_workers(["w1"])
    ok = cluster.submit("name: good\ntasks:\n  - {name: a, command: ['true']}\n", name="g.yaml")
    bad = cluster.submit("name: bad\ntasks:\n  - {name: a, command: ['false']}\n", name="b.yaml")
    ok2 = cluster.submit("name: good\ntasks:\n  - {name: a, command: ['true']}\n", name="g.yaml")
    for r in (ok, bad, ok2):
        cluster.wait_run(r)

    def ids(*args):
        return [r["run_id"] for r in cluster.json("runs", *args)]
    assert ids() == [ok2, bad, ok]
    assert ids("--pipeline", "good") == [ok2, ok]
    assert ids("--state", "failed") == [bad]
    assert ids("--state", "succeeded", "--limit", "1") == [ok2]
    assert ids("--since", "1h") == [ok2, bad, ok]
    assert ids("--since", "2000-01-01T00:00:00Z") == [ok2, bad, ok]
    assert ids("--since", "2999-01-01T00:00:00Z") == []
    owner = cluster.json("runs")[0]["owner"]  # the tester (its key's name) with keys
    if owner:
        assert ids("--owner", owner) == [ok2, bad, ok]
    assert ids("--owner", "nobody") == []
    for args, want in ((["--state", "done"], "--state needs pending, running"),
                       (["--since", "yesterday"], "--since needs an age")):
        r = cluster.cli("runs", *args, check=False)
        assert r.returncode == 1 and want in r.stderr, r.stderr
