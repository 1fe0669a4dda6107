"""History: finished runs leave the master's memory after the retention and
are read back from etcd on demand (status, logs, cancel; after a restart
too); etcd's history is compacted so its database stops growing."""
import json
import os
import signal
import urllib.request

from conftest import task, wait_until


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


def etcd_keys(cluster, prefix):
    import base64
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(end.encode()).decode(),
                       "keys_only": True}).encode()
    req = urllib.request.Request(cluster.etcd_url + "/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        return [base64.b64decode(kv["key"]).decode() for kv in json.load(r).get("kvs", [])]


def test_runs_leave_etcd_after_the_history_kept(cluster):
    """--keep-history: a run and its logs are deleted that long after it
    ended (its records, its index key, its log directory); status then
    says there is no such run."""
    cluster.start_master("--keep-history", "2", "--retain-age", "1")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit(one_task("gone", "bye"))
    assert cluster.wait_run(run)["state"] == "succeeded"
    assert cluster.cli("logs", run, "t").stdout == "bye\n"
    logs = os.path.join(cluster.tmp, "master", "logs", run)
    assert os.path.isdir(logs)
    assert any(k.endswith("/" + run) for k in etcd_keys(cluster, "/trainyard/done/"))

    def gone():
        r = cluster.cli("status", run, check=False)
        return r.returncode != 0 and "no such run" in r.stderr
    wait_until(gone, 30, "the run to leave etcd")
    assert etcd_keys(cluster, f"/trainyard/runs/{run}") == []
    assert not any(k.endswith("/" + run) for k in etcd_keys(cluster, "/trainyard/done/"))
    wait_until(lambda: not os.path.exists(logs), 10, "its logs to be removed")
    # a run still running is never dropped, however long ago it started:
    # one that ended after it started is dropped first
    long = cluster.submit(one_task("slow", "zz").replace('"echo zz"', '"sleep 6; echo zz"'))
    cluster.wait_task_state(long, "t", ["running"])
    short = cluster.submit(one_task("quick", "q"))
    assert cluster.wait_run(short)["state"] == "succeeded"
    wait_until(lambda: "no such run" in cluster.cli("status", short, check=False).stderr, 30,
               "the short run to leave etcd")
    assert cluster.json("status", long)["state"] == "running"
    assert cluster.wait_run(long)["state"] == "succeeded"


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
