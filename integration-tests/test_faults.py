"""Failures: retries, timeouts, cancel, lost workers, a restarted master."""
import os
import re
import signal

import pytest

from conftest import pids_matching, task, wait_until


@pytest.fixture(autouse=True)
def _history(cluster):
    """Every fault test's commits are checked (history.py): one result per
    task, attempts only forward, every run ended."""
    cluster.watch_history()  # checked by the cluster fixture, once every process stopped


def test_failing_task_retried_then_fails_downstream(cluster):
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("""
name: flaky
tasks:
  - name: boom
    command: ["sh", "-c", "echo attempt $TRAINYARD_ATTEMPT; exit 3"]
    retries: 2
    retry_backoff_s: 0.1
  - name: after
    depends_on: [boom]
    command: ["true"]
  - name: after-after
    depends_on: [after]
    command: ["true"]
  - name: cleanup
    depends_on: [boom]
    trigger_rule: all_done
    command: ["true"]
  - name: on-failure
    depends_on: [boom]
    trigger_rule: one_failed
    command: ["true"]
  - name: if-fine
    depends_on: [boom]
    trigger_rule: none_failed
    command: ["true"]
""")
    st = cluster.wait_run(run)
    assert st["state"] == "failed"
    boom = task(st, "boom")
    assert boom["state"] == "failed"
    assert boom["attempt"] == 3
    assert boom["exit_code"] == 3
    assert boom["reason"] == "exit code 3"
    assert task(st, "after")["state"] == "upstream_failed"
    assert task(st, "after-after")["state"] == "upstream_failed"
    assert task(st, "after")["attempt"] == 0
    assert task(st, "cleanup")["state"] == "succeeded"
    assert task(st, "on-failure")["state"] == "succeeded"
    assert task(st, "if-fine")["state"] == "upstream_failed"
    for a in (1, 2, 3):
        assert cluster.cli("logs", run, "boom", "--attempt", str(a)).stdout == f"attempt {a}\n"


def test_timeout_kills_the_process_group(cluster):
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    marker = "600.0" + str(os.getpid())  # a unique sleep argument
    run = cluster.submit(f"""
name: slow
tasks:
  - name: sleeper
    command: "sleep {marker} & sleep {marker}"
    timeout_s: 1
""")
    st = cluster.wait_run(run)
    t = task(st, "sleeper")
    assert st["state"] == "failed"
    assert t["state"] == "failed"
    assert t["reason"] == "timed out after 1s"
    assert t["signal"] == 15
    wait_until(lambda: not pids_matching("sleep " + marker), 10, "the sleeps to be gone")


def test_cancel_stops_a_running_run(cluster):
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    marker = "601.0" + str(os.getpid())
    run = cluster.submit(f"""
name: cancelme
tasks:
  - name: long
    command: ["sleep", "{marker}"]
  - name: next
    depends_on: [long]
    command: ["true"]
""")
    cluster.wait_task_state(run, "long", ["running"])
    wait_until(lambda: pids_matching("sleep " + marker), 10, "the task process")
    r = cluster.json("cancel", run)
    assert r["state"] == "cancelled"
    st = cluster.json("status", run)
    assert st["state"] == "cancelled"
    assert task(st, "long")["state"] == "cancelled"
    assert task(st, "next")["state"] == "cancelled"
    wait_until(lambda: not pids_matching("sleep " + marker), 10, "the task process to die")
    st = cluster.json("status", run)  # its attempt's end is in: still no exit code
    assert task(st, "long")["exit_code"] is None and task(st, "long")["signal"] is None
    line = next(l for l in cluster.cli("status", run).stdout.splitlines()
                if l.startswith("long "))
    assert line.split()[1] == "cancelled" and " 0 " not in line
    wait_until(lambda: not pids_matching("sleep " + marker), 10, "the task process to die")
    again = cluster.cli("cancel", run, check=False)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_killed_worker_task_reruns_elsewhere(cluster):
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "1")
    cluster.start_worker("w2", "--cpus", "1")
    cluster.wait_workers(["w1", "w2"])
    run = cluster.submit("""
name: survivor
tasks:
  - name: work
    command: "sleep 2; echo done on $TRAINYARD_WORKER attempt $TRAINYARD_ATTEMPT"
""")
    st = cluster.wait_task_state(run, "work", ["running"])
    first = task(st, "work")["worker"]
    other = "w2" if first == "w1" else "w1"
    cluster.workers[first].kill(signal.SIGKILL)
    st = cluster.wait_run(run)
    t = task(st, "work")
    assert st["state"] == "succeeded", st
    assert t["attempt"] == 2
    assert t["worker"] == other
    assert cluster.cli("logs", run, "work").stdout == f"done on {other} attempt 2\n"
    ws = {w["id"]: w for w in cluster.json("workers")}
    assert ws[first]["state"] == "lost"


def test_master_restart_finishes_without_rerunning(cluster):
    cluster.start_master("--worker-lease-ms", "6000")
    cluster.start_worker("w1", "--cpus", "2")
    cluster.start_worker("w2", "--cpus", "2")
    cluster.wait_workers(["w1", "w2"])
    ledger = os.path.join(cluster.tmp, "ledger")
    run = cluster.submit(f"""
name: restart
tasks:
  - name: short
    command: "sleep 0.5; echo short-$TRAINYARD_ATTEMPT >> {ledger}"
  - name: long
    command: "sleep 3; echo long-$TRAINYARD_ATTEMPT >> {ledger}"
  - name: last
    depends_on: [short, long]
    command: "echo last-$TRAINYARD_ATTEMPT >> {ledger}"
""")
    cluster.wait_task_state(run, "long", ["running"])
    cluster.wait_task_state(run, "short", ["running", "succeeded"])
    cluster.master.kill(signal.SIGKILL)

    def lines():
        try:
            with open(ledger) as f:
                return f.read().split()
        except FileNotFoundError:
            return []
    # 'short' finishes while there is no master: its result must survive
    wait_until(lambda: "short-1" in lines(), 10, "short to finish during the outage")
    cluster.start_master()
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    assert sorted(lines()) == ["last-1", "long-1", "short-1"]
    for name in ("short", "long", "last"):
        assert task(st, name)["attempt"] == 1, st


def _info(ep):
    """`trainyard info -o json` of the master at ep alone, or None."""
    import json
    import subprocess
    from conftest import CLI_BIN
    r = subprocess.run([CLI_BIN, "--master", ep, "--timeout", "1", "info", "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


def _leads(ep):
    info = _info(ep)
    return bool(info and info["leader"])


def _ledger_lines(path):
    try:
        with open(path) as f:
            return f.read().split()
    except FileNotFoundError:
        return []


def test_master_kill_mid_run_runs_every_task_exactly_once(cluster):
    """Issue 16's double run: kill -9 of the master mid-run and a restart ran
    2 of 20 tasks twice at once (a re-registration in flight was taken for
    "the worker no longer runs them").  Three rounds, 20 one-second tasks
    each on 10 slots; the master stays dead for a while, so the workers'
    heartbeats queue up and each earns a re-registration when it restarts.
    Every task writes its name once, and each has one attempt."""
    import time
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "5")
    cluster.start_worker("w2", "--cpus", "5")
    cluster.wait_workers(["w1", "w2"])
    for rnd in range(3):
        ledger = os.path.join(cluster.tmp, f"ledger{rnd}")
        tasks = "".join(f"  - name: t{i}\n    command: \"sleep 1; echo t{i} >> {ledger}\"\n"
                        for i in range(20))
        run = cluster.submit(f"name: once{rnd}\ntasks:\n{tasks}")
        wait_until(lambda: sum(t["state"] == "running" for t in cluster.json(
            "status", run)["tasks"]) >= 5, 20, "tasks to run")
        cluster.master.kill(signal.SIGKILL)
        time.sleep(1.5)  # a master that is down: not an event to wait for
        cluster.start_master()
        st = cluster.wait_run(run)
        assert st["state"] == "succeeded", st
        assert sorted(_ledger_lines(ledger)) == sorted(f"t{i}" for i in range(20)), rnd
        assert [t["attempt"] for t in st["tasks"]] == [1] * 20, st


def test_worker_cut_off_from_master_kills_its_tasks(cluster):
    cluster.start_master("--worker-lease-ms", "1000")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    marker = "602.0" + str(os.getpid())
    run = cluster.submit(f"""
name: orphan
tasks:
  - name: long
    command: ["sleep", "{marker}"]
""")
    cluster.wait_task_state(run, "long", ["running"])
    wait_until(lambda: pids_matching("sleep " + marker), 10, "the task process")
    os.kill(cluster.master.pid, signal.SIGSTOP)  # silent, not gone
    try:
        wait_until(lambda: not pids_matching("sleep " + marker), 15,
                   "the worker to kill its task after its lease")
        assert "lost contact with the master" in cluster.workers["w1"].text() or \
            "no word from the master" in cluster.workers["w1"].text()
    finally:
        os.kill(cluster.master.pid, signal.SIGCONT)
    # the run is re-queued; end it, so that the history checker sees it end
    cluster.cli("cancel", run)
    assert cluster.wait_run(run)["state"] == "cancelled"


def test_stopped_worker_hands_its_task_back(cluster):
    cluster.start_master()
    cluster.start_worker("w1", "--cpus", "1")
    cluster.start_worker("w2", "--cpus", "1")
    cluster.wait_workers(["w1", "w2"])
    run = cluster.submit("""
name: handback
tasks:
  - name: work
    command: "sleep 2; echo done on $TRAINYARD_WORKER"
""")
    st = cluster.wait_task_state(run, "work", ["running"])
    first = task(st, "work")["worker"]
    other = "w2" if first == "w1" else "w1"
    cluster.workers[first].kill(signal.SIGTERM)  # graceful: kills its task, deregisters
    st = cluster.wait_run(run)
    t = task(st, "work")
    assert st["state"] == "succeeded", st
    assert t["attempt"] == 2 and t["worker"] == other  # retries: 0, yet not failed
    ws = {w["id"]: w["state"] for w in cluster.json("workers")}
    assert ws[first] == "gone"
    log = cluster.master.text()
    assert f"worker {first} deregistered" in log
    assert log.count(f"worker {first} registered") == 1  # it did not come back


def test_submit_wait_survives_a_master_restart(cluster):
    import subprocess
    from conftest import CLI_BIN
    cluster.start_master("--worker-lease-ms", "6000")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    path = cluster.write("slow.yaml", "name: slow\ntasks:\n  - name: t\n"
                                      "    command: \"sleep 3; echo done\"\n")
    env = dict(os.environ, TRAINYARD_MASTER=cluster.client_ep)
    p = subprocess.Popen([CLI_BIN, "submit", path, "--wait", "-o", "json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = wait_until(lambda: [r["run_id"] for r in cluster.json("runs")], 20, "the run")[0]
        cluster.wait_task_state(run, "t", ["running"])
        cluster.master.kill(signal.SIGKILL)
        cluster.start_master()
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    import json as _json
    st = _json.loads(out)
    assert st["state"] == "succeeded" and task(st, "t")["attempt"] == 1


def test_standby_takes_over_after_the_leader_is_killed(cluster):
    """Two masters share one data directory; the workers and the CLI know
    both.  kill -9 of the leader mid-run: the standby leads within the TTL
    (3 s) plus 2 s, `submit --wait` started before carries on without a new
    command, nor does `logs -f` of a task that starts after it, the workers
    re-register with it, the run succeeds with every
    task run exactly once, and a log written before the failover is still
    readable after it.  Before that, the standby answers `info` itself (not
    leading, naming the leader) and sends anything else to the leader."""
    import json
    import subprocess
    import time
    from conftest import CLI_BIN
    shared = os.path.join(cluster.tmp, "master")
    cluster.start_master("--leader-ttl", "3", "--worker-lease-ms", "6000")
    m2 = cluster.start_standby("m2", "--leader-ttl", "3", "--worker-lease-ms", "6000",
                               data_dir=shared)
    wait_until(lambda: "standing by" in m2.text(), 15, "the second master to stand by")
    cluster.start_worker("w1", "--cpus", "5")
    cluster.start_worker("w2", "--cpus", "5")
    cluster.wait_workers(["w1", "w2"])
    r = subprocess.run([CLI_BIN, "--master", m2.client_ep, "info", "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    info = json.loads(r.stdout)
    assert (info["node_id"], info["leader"], info["leader_node"], info["pid"]) == \
        ("m2", False, "m1", m2.pid)
    before = cluster.submit("name: before\ntasks:\n  - {name: a, command: [echo, hi]}\n")
    assert cluster.wait_run(before)["state"] == "succeeded"
    # a standby redirects: the CLI asking it first still gets the answer
    r = subprocess.run([CLI_BIN, "--master", f"{m2.client_ep},{cluster.client_ep.split(',')[0]}",
                        "logs", before, "a"], capture_output=True, text=True, timeout=30)
    assert r.stdout == "hi\n", r.stderr
    ledger = os.path.join(cluster.tmp, "ledger")
    tasks = "".join(f"  - name: t{i}\n    command: \"sleep 1; echo t{i} >> {ledger}; "
                    f"echo done-t{i}\"\n" for i in range(20))
    path = cluster.write("many.yaml", f"name: many\ntasks:\n{tasks}")
    env = dict(os.environ, TRAINYARD_MASTER=cluster.client_ep)
    p = subprocess.Popen([CLI_BIN, "submit", path, "--wait", "-o", "json"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    follow = None
    try:
        run = wait_until(lambda: [x["run_id"] for x in cluster.json("runs")
                                  if x["run_id"] != before], 20, "the run")[0]
        wait_until(lambda: sum(t["state"] == "running" for t in cluster.json(
            "status", run)["tasks"]) >= 5, 20, "tasks to run")
        # a log follow of a task that has not started yet, across the failover
        follow = subprocess.Popen([CLI_BIN, "logs", run, "t19", "-f"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        cluster.master.kill(signal.SIGKILL)
        killed = time.monotonic()

        wait_until(lambda: _leads(m2.client_ep), 20, "the standby to lead", interval=0.02)
        took = time.monotonic() - killed
        assert took <= 3 + 2, took
        out, err = p.communicate(timeout=120)
        fout, ferr = follow.communicate(timeout=60)
    finally:
        for proc in (p, follow):
            if proc and proc.poll() is None:
                proc.kill()
    assert follow.returncode == 0 and fout == "done-t19\n", ferr
    assert p.returncode == 0, err
    st = json.loads(out)
    assert st["state"] == "succeeded"
    assert sorted(_ledger_lines(ledger)) == sorted(f"t{i}" for i in range(20))
    assert all(t["attempt"] == 1 for t in st["tasks"]), st
    assert {w["id"] for w in cluster.json("workers") if w["state"] == "up"} == {"w1", "w2"}
    assert cluster.cli("logs", before, "a").stdout == "hi\n"
    info = cluster.json("info")
    assert (info["node_id"], info["leader"], info["pid"]) == ("m2", True, m2.pid)
    print(f"standby led {took:.2f} s after kill -9 of the leader")


def test_a_lone_master_outlives_an_etcd_pause_longer_than_its_lease(cluster):
    """etcd stopped (SIGSTOP) for longer than the leader TTL: the only master
    loses its lease and stands by instead of exiting, and leads again by
    itself once etcd answers; the run in progress finishes."""
    import json
    import subprocess
    import time
    from conftest import CLI_BIN
    cluster.start_master("--leader-ttl", "2", "--worker-lease-ms", "15000")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    epoch = cluster.json("info")["epoch"]
    run = cluster.submit("name: across\ntasks:\n  - {name: a, command: [sleep, '2']}\n"
                         "  - {name: b, depends_on: [a], command: ['true']}\n")
    cluster.wait_task_state(run, "a", ["running"])
    etcd = next(p for p in cluster.procs if p.name == "etcd")
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: "no longer leads" in cluster.master.text(), 15,
                   "the master to notice it lost its lease")
        # standing by, it still answers info, and says why nobody leads
        r = subprocess.run([CLI_BIN, "--master", cluster.client_ep, "--timeout", "3", "info",
                            "-o", "json"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and json.loads(r.stdout)["leader"] is False, r.stderr
        r = subprocess.run([CLI_BIN, "--master", cluster.client_ep, "--timeout", "2", "runs"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "no master leads yet (leader lease not confirmed for a TTL; etcd at http" \
            in r.stderr, r.stderr
        time.sleep(1)  # etcd stays stopped a while past the TTL: no event to wait for
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    assert cluster.master.alive()
    wait_until(lambda: cluster.json("info")["leader"], 30, "the master to lead again")
    assert cluster.json("info")["epoch"] > epoch
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    assert task(st, "a")["attempt"] == 1


def test_a_leader_paused_past_its_lease_steps_down_and_dispatches_nothing(cluster):
    """SIGSTOP of the leader for longer than its TTL: the standby takes over;
    on SIGCONT the old leader finds its lease gone, stands by, and sends no
    dispatch (every task of the run runs once, on the new leader's word)."""
    import json
    import subprocess
    from conftest import CLI_BIN
    cluster.start_master("--leader-ttl", "2", "--worker-lease-ms", "15000")
    m2 = cluster.start_standby("m2", "--leader-ttl", "2", "--worker-lease-ms", "15000")
    wait_until(lambda: "standing by" in m2.text(), 15, "the second master to stand by")
    cluster.start_worker("w1", "--cpus", "4")
    cluster.wait_workers(["w1"])
    ledger = os.path.join(cluster.tmp, "ledger")
    tasks = "".join(f"  - name: t{i}\n    command: \"sleep 0.5; echo t{i} >> {ledger}\"\n"
                    + (f"    depends_on: [t{i - 4}]\n" if i >= 4 else "") for i in range(12))
    run = cluster.submit(f"name: paused\ntasks:\n{tasks}")
    cluster.wait_task_state(run, "t0", ["running"])
    os.kill(cluster.master.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: _leads(m2.client_ep), 20, "the standby to lead")
    finally:
        os.kill(cluster.master.pid, signal.SIGCONT)
    wait_until(lambda: "no longer leads" in cluster.master.text(), 15,
               "the old leader to step down")
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    assert sorted(_ledger_lines(ledger)) == sorted(f"t{i}" for i in range(12))
    r = subprocess.run([CLI_BIN, "--master", cluster.client_ep.split(",")[0], "info", "-o",
                        "json"], capture_output=True, text=True, timeout=30)
    info = json.loads(r.stdout)
    assert (info["node_id"], info["leader"], info["leader_node"]) == ("m1", False, "m2")
    assert cluster.master.alive()


def test_two_masters_started_together_elect_exactly_one(cluster):
    """20 times: two masters started at the same instant; once both answer,
    exactly one says it leads and the other names it."""
    import json
    import subprocess
    from conftest import CLI_BIN, MASTER_BIN, Proc, free_port
    for rnd in range(20):
        procs = []
        for node in ("a", "b"):
            cep = f"tcp://127.0.0.1:{free_port()}"
            procs.append((Proc(f"{node}{rnd}", [
                MASTER_BIN, "--etcd", cluster.etcd_url, "--node-id", node, "--client-bind", cep,
                "--worker-bind", f"tcp://127.0.0.1:{free_port()}", "--log-level", "warn", "--insecure",
                "--data-dir", os.path.join(cluster.tmp, f"m-{node}")],
                os.path.join(cluster.tmp, f"m-{node}{rnd}.log")), cep))
        cluster.procs.extend(p for p, _ in procs)

        def infos():
            out = []
            for _, cep in procs:
                r = subprocess.run([CLI_BIN, "--master", cep, "--timeout", "2", "info", "-o",
                                    "json"], capture_output=True, text=True, timeout=30)
                if r.returncode != 0:
                    return None
                out.append(json.loads(r.stdout))
            # both answered, and the standby knows who leads
            return out if all(i["leader"] or i["leader_node"] for i in out) else None
        got = wait_until(infos, 20, "both masters to answer")
        leaders = [i["node_id"] for i in got if i["leader"]]
        assert len(leaders) == 1, (rnd, got)
        assert all(i["leader_node"] == leaders[0] for i in got), (rnd, got)
        for p, _ in procs:
            p.kill(signal.SIGTERM)


def test_a_submit_through_an_etcd_pause_makes_exactly_one_run(cluster):
    """etcd stopped for 8 s around a submit: the CLI sends it again (same
    request id) while nothing answers; the master that stored it (or the one
    leading after the pause) answers with the same run: exactly one run.
    A submit repeating a request id by hand gets that run too."""
    import subprocess
    import time
    from conftest import CLI_BIN
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    path = cluster.write("idem.yaml", "name: idem\ntasks:\n  - {name: a, command: ['true']}\n")
    etcd = next(p for p in cluster.procs if p.name == "etcd")
    env = dict(os.environ, TRAINYARD_MASTER=cluster.client_ep)
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        p = subprocess.Popen([CLI_BIN, "--timeout", "40", "submit", path, "--request-id",
                              "idem-1"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        time.sleep(8)  # etcd stays stopped: there is no event to wait for
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 0, err
    run = out.strip()
    # it said it was asking again, with what and until when
    assert re.search(r"; sending the submit again \(request id idem-1: it makes one run, "
                     r"whichever try lands\) until \d{4}-\d\d-\d\dT", err), err
    assert [r["run_id"] for r in cluster.json("runs")] == [run]
    assert cluster.wait_run(run)["state"] == "succeeded"
    again = cluster.cli("submit", path, "--request-id", "idem-1").stdout.strip()
    assert again == run
    assert len(cluster.json("runs")) == 1
    bad = cluster.cli("submit", path, "--request-id", "no spaces", check=False)
    assert bad.returncode != 0 and "--request-id needs 1 to 64" in bad.stderr


def test_a_submit_while_etcd_is_silent_is_refused_with_nothing_stored(cluster):
    """Once etcd has not answered the leader for --store-stall-ms, a submit
    gets a definite error saying nothing was stored (not "it may have been"),
    `info` shows how long etcd has been quiet, and after etcd is back no run
    exists until the same request id is sent again, which makes one."""
    cluster.start_master("--store-stall-ms", "500")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    path = cluster.write("refused.yaml", "name: refused\ntasks:\n  - {name: a, command: ['true']}\n")
    etcd = next(p for p in cluster.procs if p.name == "etcd")
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: cluster.json("info", "--timeout", "1")["etcd_quiet_ms"] >= 500, 10,
                   "the leader to see etcd quiet")
        r = cluster.cli("--timeout", "1", "submit", path, "--request-id", "out-1", check=False)
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "submit refused, nothing was stored" in r.stderr, r.stderr
    assert "may have been stored" not in r.stderr
    wait_until(lambda: cluster.cli("runs", check=False).returncode == 0, 30, "the master to serve")
    assert cluster.json("runs") == []
    assert cluster.json("info")["etcd_quiet_ms"] < 500
    run = cluster.cli("submit", path, "--request-id", "out-1").stdout.strip()
    assert cluster.wait_run(run)["state"] == "succeeded"
    assert [x["run_id"] for x in cluster.json("runs")] == [run]


def test_running_tasks_survive_etcd_stopped_for_30_s(cluster):
    """etcd stopped (SIGSTOP) for 30 s mid-run, far past the leader TTL and
    the worker lease: the master stands by, saying why to the CLI; the
    workers hear that nobody leads (so nobody can have given their tasks
    up) and keep them running; once etcd answers, the master leads again,
    adopts the running attempt, and the run finishes with one attempt."""
    import subprocess
    import time
    from conftest import CLI_BIN
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("name: outage\ntasks:\n  - {name: a, command: [sleep, '34']}\n"
                         "  - {name: b, depends_on: [a], command: ['true']}\n")
    cluster.wait_task_state(run, "a", ["running"])
    etcd = next(p for p in cluster.procs if p.name == "etcd")
    os.kill(etcd.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: "no longer leads" in cluster.master.text(), 20,
                   "the master to notice it lost its lease")
        r = subprocess.run([CLI_BIN, "--master", cluster.client_ep, "--timeout", "2", "status",
                            run], capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "no master leads yet" in r.stderr and "etcd at" in r.stderr
        time.sleep(25)  # etcd stays stopped for 30 s in all: no event to wait for
        assert "killing" not in cluster.workers["w1"].text()
    finally:
        os.kill(etcd.pid, signal.SIGCONT)
    st = cluster.wait_run(run, timeout=90)
    assert st["state"] == "succeeded", st
    assert task(st, "a")["attempt"] == 1
