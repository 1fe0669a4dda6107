"""MPI gangs across workers (issue 20): workers on distinct loopback
addresses (127.0.1.1, 127.0.1.2, ...), which Open MPI takes for distinct
hosts; part 0's mpirun starts the other parts' daemons through
trainyard-rsh and the master, no ssh.  Tested: every rank where its part
is, with its worker's environment and directory; the same model bytes as
the same ranks on one worker; a worker killed mid-step ends every rank on
both and the retry resumes from the checkpoint; DDP with gloo across two
workers; two gangs that cannot both fit run one after the other; a gang
larger than the cluster says so at submit; a part whose worker does not
answer at launch ends the attempt with the worker named, leaving nothing."""
import hashlib
import os
import re
import signal
import time

import pytest

from conftest import ROOT, pids_matching, wait_until
from test_trainer import TRAIN, run as train_run


def hosts(cluster, n=2, cpus="2"):
    """A master and n workers w1.. at 127.0.1.1.., MPI over loopback."""
    cluster.start_master()
    ids = [f"w{i}" for i in range(1, n + 1)]
    for i, w in enumerate(ids, 1):
        cluster.start_worker(w, "--cpus", cpus, "--address", f"127.0.1.{i}", "--mpi-if", "lo")
    cluster.wait_workers(ids)
    return ids


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running(marker):
    return [p for p in pids_matching(marker) if alive(p)]


def test_a_gang_spans_two_workers(cluster):
    hosts(cluster)
    run = cluster.submit(r"""
name: gang
tasks:
  - name: hello
    kind: mpi
    np: 4
    ranks_per_worker: 2
    command: ["sh", "-c", "echo rank $RANK of $WORLD_SIZE local $LOCAL_RANK on $TRAINYARD_WORKER in $PWD rendezvous $MASTER_ADDR:$MASTER_PORT gloo $GLOO_SOCKET_IFNAME"]
""")
    st = cluster.wait_run(run, timeout=60)
    log = cluster.cli("logs", run, "hello").stdout
    assert st["state"] == "succeeded", (st, log)
    lines = sorted(line for line in log.splitlines() if line.startswith("[rank "))
    assert len(lines) == 4, log
    port = re.search(r"rendezvous 127\.0\.1\.1:(\d+)", log).group(1)
    for r, w in ((0, "w1"), (1, "w1"), (2, "w2"), (3, "w2")):
        line = lines[r]
        # the worker's prefix says which rank wrote the line
        assert line.startswith(f"[rank {r}] rank {r} of 4 local {r % 2} on {w} in "), log
        # each rank in its own part's attempt directory, on its worker
        assert f"/work-{w}/{run}/hello/1 " in line, log
        assert line.endswith(f"rendezvous 127.0.1.1:{port} gloo lo"), log
    w1, w2 = cluster.workers["w1"].text(), cluster.workers["w2"].text()
    assert "mpirun starts part 1 at 127.0.1.2" in w1
    assert "part 1 launched by mpirun" in w2
    # both workers are free again; the task's record keeps where its parts ran
    ws = {w["id"]: w for w in cluster.json("workers")}
    assert ws["w1"]["used_cpus"] == 0 and ws["w2"]["used_cpus"] == 0
    parts = [(p["worker"], p["ranks"]) for p in st["tasks"][0]["parts"]]
    assert parts == [("w1", 2), ("w2", 2)], st
    assert " w1+w2 " in cluster.cli("status", run).stdout


def test_four_ranks_on_two_workers_train_the_model_of_four_on_one(cluster, tmp_path):
    """The trainer's sum by messages adds in the same order wherever the
    ranks are, so 2+2 ranks on two workers write the same bytes as 4 ranks
    on one worker with TY_GRAD_SHM=0 (no shared-memory sum)."""
    data = str(tmp_path / "d.csv")
    train_run("gen", "--rows", "3000", "--features", "8", "--classes", "3", "--seed", "5",
              "--out", data)
    hosts(cluster)
    fit = (f"trainyard-train fit --train {data} --val-split 0.2 --model mlp:16 --epochs 3 "
           f"--lr 0.05 --seed 3 --out model.bin")
    across = cluster.submit(f"""
name: across
tasks:
  - name: fit
    kind: mpi
    np: 4
    ranks_per_worker: 2
    outputs: [model.bin]
    command: {fit}
""")
    st = cluster.wait_run(across, timeout=240)
    assert st["state"] == "succeeded", cluster.cli("logs", across, "fit").stdout
    cluster.start_worker("w3", "--cpus", "4", "--address", "127.0.1.3", "--mpi-if", "lo")
    cluster.wait_workers(["w3"])
    one = cluster.submit(f"""
name: one
tasks:
  - name: fit
    kind: mpi
    np: 4
    env: {{TY_GRAD_SHM: "0"}}
    outputs: [model.bin]
    command: {fit}
""")
    st1 = cluster.wait_run(one, timeout=240)
    assert st1["state"] == "succeeded", cluster.cli("logs", one, "fit").stdout
    assert st1["tasks"][0]["worker"] == "w3"
    a, b = st["tasks"][0]["outputs"][0], st1["tasks"][0]["outputs"][0]
    assert a["sha256"] == b["sha256"] and a["size"] == b["size"], (a, b)
    assert st["tasks"][0]["metrics"]["accuracy"] == st1["tasks"][0]["metrics"]["accuracy"]


def test_a_worker_killed_mid_step_ends_the_gang_and_the_retry_resumes(cluster, tmp_path):
    """w2 killed outright (its daemon and ranks run on, as on a host that
    is cut off): once its lease runs out every rank on both workers ends,
    and the attempt runs again as a whole, when 4 ranks fit again (w3
    comes), from the checkpoint attempt 1 left beside w1's directory."""
    data = str(tmp_path / "d.csv")
    train_run("gen", "--rows", "4000", "--features", "16", "--classes", "2", "--seed", "9",
              "--out", data)
    hosts(cluster)
    epochs = tmp_path / "epochs"  # attempt 1: "forever"; attempt 2: what the test writes
    marker = str(tmp_path / "gang-model.bin")
    run = cluster.submit(f"""
name: resume
tasks:
  - name: train
    kind: mpi
    np: 4
    ranks_per_worker: 2
    command: >-
      trainyard-train fit --train {data} --model mlp:32 --lr 0.05
      --out {marker}.$TRAINYARD_ATTEMPT
      --epochs $(cat {epochs}.$TRAINYARD_ATTEMPT 2>/dev/null || echo 100000)
      --checkpoint-dir ../ck --resume
""")
    st = cluster.wait_task_state(run, "train", ["running"])
    assert [p["worker"] for p in st["tasks"][0]["parts"]] == ["w1", "w2"], st

    def epoch():
        t = cluster.json("status", run)["tasks"][0]
        return t["metrics"].get("loss", {}).get("step", 0)
    wait_until(lambda: epoch() >= 2, 120, "two epochs (a checkpoint)")
    ranks = running(marker + ".1")  # the four trainers, two through w2's daemon
    assert len([p for p in ranks if "trainyard-train" in open(f"/proc/{p}/cmdline").read()]) == 4
    cluster.workers["w2"].kill(signal.SIGKILL)
    killed = time.monotonic()
    assert any(alive(p) for p in ranks)  # the job outlives w2, as a cut-off host's would
    wait_until(lambda: not running(marker + ".1"), 15, "every rank on both workers to end")
    ended = time.monotonic() - killed
    print(f"every rank ended {ended:.1f} s after the worker was killed (lease 2 s, grace 1 s)")
    st = cluster.wait_task_state(run, "train", ["queued"])
    t = st["tasks"][0]
    assert t["reason"] == "worker w2 lost (part 1 of the gang)", t
    # 4 ranks do not fit w1 alone: it waits for room, holding none
    assert cluster.json("workers")[0]["used_cpus"] == 0
    epochs.with_name(epochs.name + ".2").write_text(str(epoch() + 5))
    cluster.start_worker("w3", "--cpus", "2", "--address", "127.0.1.3", "--mpi-if", "lo")
    st = cluster.wait_run(run, timeout=180)
    t = st["tasks"][0]
    second = cluster.cli("logs", run, "train", "--attempt", "2").stdout
    assert st["state"] == "succeeded" and t["attempt"] == 2, (st, second)
    assert t["worker"] == "w1", t  # where its checkpoint is
    m = re.search(r"resuming after epoch (\d+)", second)
    assert m and int(m.group(1)) >= 2, second
    assert "mpirun starts part 1 at 127.0.1.3" in cluster.workers["w1"].text()


def test_ddp_across_two_workers_with_gloo(cluster):
    pytest.importorskip("torch")
    hosts(cluster)
    with open(os.path.join(ROOT, "examples", "pipelines", "ddp.yaml")) as f:
        text = f.read().replace("    np: 2\n", "    np: 2\n    ranks_per_worker: 1\n")
    script = os.path.join(ROOT, "examples", "ddp", "train_ddp.py")
    run = cluster.submit(text, f"script={script}", "epochs=2")
    st = cluster.wait_run(run, timeout=100)
    log = cluster.cli("logs", run, "train").stdout
    assert st["state"] == "succeeded", (st, log)
    for r in (0, 1):  # one rank on each worker, meeting at w1's address
        assert re.search(rf"rank {r} of 2 \(local 0 of 1\) on cpu, rendezvous 127\.0\.1\.1:\d+, "
                         r"sockets on lo", log), log
    digests = re.findall(r"rank \d parameters (\w+)", log)
    assert len(digests) == 2 and len(set(digests)) == 1, log  # the replicas agree
    assert [o["name"] for o in st["tasks"][0]["outputs"]] == ["model.pt"]


def test_two_gangs_that_cannot_both_fit_run_one_after_the_other(cluster):
    hosts(cluster)
    gang = """
name: {n}
tasks:
  - name: t
    kind: mpi
    np: 4
    ranks_per_worker: 2
    command: ["sleep", "1"]
"""
    runs = [cluster.submit(gang.format(n=n), name=f"{n}.yaml") for n in ("g1", "g2")]
    # the second waits for all of its room, holding none
    st2 = cluster.wait_task_state(runs[1], "t", ["queued"])
    st1 = cluster.json("status", runs[0])
    if st1["tasks"][0]["state"] == "running":
        assert "waiting for room: it needs 4 ranks" in (st2["tasks"][0]["reason"] or ""), st2
    sts = [cluster.wait_run(r, timeout=60) for r in runs]
    assert all(s["state"] == "succeeded" for s in sts), sts
    a, b = sorted((s["tasks"][0] for s in sts), key=lambda t: t["started_at"])
    assert a["finished_at"] <= b["started_at"], (a, b)


def test_a_gang_larger_than_the_cluster_says_so_at_submit(cluster):
    hosts(cluster)
    path = cluster.write("big.yaml", """
name: big
tasks:
  - name: t
    kind: mpi
    np: 6
    max_ranks_per_worker: 2
    command: ["true"]
""")
    r = cluster.cli("submit", path)
    run = r.stdout.strip()
    assert ("warning: t: no worker can run it: it needs 6 ranks of 1 CPUs, at most 2 on each "
            "worker; the workers up hold 4 of them when idle") in r.stderr, r.stderr
    st = cluster.json("status", run)
    assert st["tasks"][0]["state"] == "queued"
    assert st["tasks"][0]["reason"].startswith("no worker can run it: it needs 6 ranks"), st
    cluster.cli("cancel", run)


def test_a_part_whose_worker_does_not_answer_ends_the_attempt(cluster, tmp_path):
    """w2 stops (SIGSTOP) before the launch: mpirun's daemon there never
    starts; once w2's lease runs out the attempt ends naming it, mpirun is
    killed, and when w2 comes back its stale part is cancelled: nothing of
    the gang runs anywhere."""
    hosts(cluster)
    marker = str(tmp_path / "never")
    w2 = cluster.workers["w2"]
    os.kill(w2.pid, signal.SIGSTOP)
    try:
        run = cluster.submit(f"""
name: stuck
tasks:
  - name: t
    kind: mpi
    np: 4
    ranks_per_worker: 2
    command: ["sh", "-c", "sleep 60 # {marker}"]
""")
        wait_until(lambda: (cluster.json("status", run)["tasks"][0]["reason"] or "")
                   .startswith("worker w2 lost"), 20, "the gang to end with w2 lost")
        st = cluster.json("status", run)
        assert st["tasks"][0]["reason"] == "worker w2 lost (part 1 of the gang)", st
    finally:
        os.kill(w2.pid, signal.SIGCONT)
    # back, w2 hears of the stale part and ends it
    wait_until(lambda: re.search(r"stuck-\w+/t#1( finished|: part 1 ends before its launch)",
                                 w2.text()), 20, "w2 to end its stale part")
    cluster.cli("cancel", run)
    wait_until(lambda: not running(marker) and not running("orted"), 20,
               "nothing of the gang to run")


def test_the_gang_example_runs_as_it_is(cluster):
    """examples/pipelines/gang.yaml, what scripts/demo.sh runs: each part
    fetches the input into its own directory, where its ranks read it."""
    hosts(cluster)
    with open(os.path.join(ROOT, "examples", "pipelines", "gang.yaml")) as f:
        run = cluster.submit(f.read(), "rows=3000", "epochs=2")
    st = cluster.wait_run(run, timeout=120)
    assert st["state"] == "succeeded", (st, cluster.cli("logs", run, "train").stdout)
    t = [t for t in st["tasks"] if t["name"] == "train"][0]
    assert t["metrics"]["accuracy"]["step"] == 2 and t["worker"] == "w1"
    assert [o["name"] for o in t["outputs"]] == ["model.bin"]
    for w in ("w1", "w2"):  # the input, in both parts' attempt directories
        assert os.path.exists(os.path.join(cluster.tmp, f"work-{w}", run, "train", "1", "inputs",
                                           "data", "train.csv"))
