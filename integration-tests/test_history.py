"""History: finished runs leave the master's memory after the retention and
are read back from etcd on demand (status, logs, cancel; after a restart
too); etcd's history is compacted so its database stops growing."""
import json
import signal
import urllib.request

from conftest import task


def one_task(name, text):
    return f"name: {name}\ntasks:\n  - name: t\n    command: [\"sh\", \"-c\", \"echo {text}\"]\n"


def test_finished_runs_leave_memory_and_are_read_back(cluster):
    cluster.start_master("--retain-runs", "2", "--retain-tasks", "100", "--retain-age", "3600")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    runs = []
    for i in range(5):
        run = cluster.submit(one_task(f"h{i}", f"hello {i}"))
        assert cluster.wait_run(run)["state"] == "succeeded"
        runs.append(run)
    info = cluster.json("info")
    assert info["runs_in_memory"] == 2, info
    assert info["runs_released"] == 3, info
    # the listing shows what is in memory, newest first
    assert [r["run_id"] for r in cluster.json("runs")] == [runs[4], runs[3]]
    # an old run is read back from etcd: status, logs, cancel
    st = cluster.json("status", runs[0])
    assert st["run_id"] == runs[0] and st["state"] == "succeeded"
    assert task(st, "t")["state"] == "succeeded" and task(st, "t")["attempt"] == 1
    assert cluster.cli("logs", runs[0], "t").stdout == "hello 0\n"
    r = cluster.cli("cancel", runs[0], check=False)
    assert r.returncode != 0 and f"run {runs[0]} is already succeeded" in r.stderr
    r = cluster.cli("status", runs[0] + "x", check=False)
    assert r.returncode != 0 and "no such run" in r.stderr
    # and after a restart, the same
    cluster.master.kill(signal.SIGKILL)
    cluster.start_master("--retain-runs", "2", "--retain-tasks", "100", "--retain-age", "3600")
    cluster.wait_workers(["w1"])
    assert cluster.json("status", runs[1])["state"] == "succeeded"
    assert cluster.cli("logs", runs[1], "t").stdout == "hello 1\n"
    assert cluster.json("info")["runs_in_memory"] <= 2


def etcd_status(cluster):
    req = urllib.request.Request(cluster.etcd_url + "/v3/maintenance/status", data=b"{}",
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.load(r)


def test_etcd_history_is_compacted(cluster):
    cluster.start_master("--compact-every", "20")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    lines = ["name: many", "tasks:"] + [f"  - {{name: t{i}, command: [\"true\"]}}"
                                        for i in range(120)]
    run = cluster.submit("\n".join(lines) + "\n")
    assert cluster.wait_run(run, timeout=120)["state"] == "succeeded"
    rev = int(etcd_status(cluster)["header"]["revision"])
    assert rev > 60
    # a read at a revision long gone is refused: it was compacted away
    body = json.dumps({"key": "L3RyYWlueWFyZC9sZWFkZXIuc2Vx", "revision": 5}).encode()
    req = urllib.request.Request(cluster.etcd_url + "/v3/kv/range", data=body, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            out = json.load(r)
        compacted = "compacted" in json.dumps(out)
    except urllib.error.HTTPError as e:
        compacted = "compacted" in e.read().decode()
    assert compacted
