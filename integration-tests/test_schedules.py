"""Cron schedules on a real cluster (issue 18, point 1 and 2).  The masters
run under a shifted wall clock (Debian's libfaketime, its timestamp file
rewritten while they run); etcd, the workers and the CLI keep real time."""
import json
import os
import signal
import subprocess

import pytest

from conftest import CLI_BIN, faketime_env, running_cluster, task, wait_until

PIPE = """
name: nightly
tasks:
  - name: train
    command: [sh, -c, "echo trained"]
"""


def set_clock(path, when):
    """The masters' wall clock jumps to `when` (UTC) and runs on from there."""
    tmp = str(path) + ".new"
    with open(tmp, "w") as f:
        f.write(f"@{when}\n")
    os.replace(tmp, path)


def stored_runs(c, prefix):
    """Run ids under runs/ in etcd that start with prefix (one key per run)."""
    out = subprocess.run(["etcdctl", "--endpoints", c.etcd_url, "get", "--prefix", "--keys-only",
                          "/trainyard/runs/" + prefix], capture_output=True, text=True,
                         check=True).stdout
    return sorted(k.split("/")[3] for k in out.split() if k.count("/") == 3)


def leads(ep):
    r = subprocess.run([CLI_BIN, "--master", ep, "--timeout", "1", "info", "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and json.loads(r.stdout)["leader"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One master and one worker for the tests that do not disturb them."""
    with running_cluster(tmp_path_factory.mktemp("schedules")) as c:
        c.start_master()
        c.start_worker("w1")
        c.wait_workers(["w1"])
        yield c


def test_schedules_are_managed_and_bad_ones_refused(shared):
    """add, list, show (the next 5 fires, in the zone and UTC), pause,
    resume, rm, each with -o json; an expression, zone or policy that is
    wrong is refused with the reason, and so is a bad schedule: key in a
    pipeline file (file:line)."""
    c = shared
    path = c.write("nightly.yaml", PIPE)
    out = c.cli("schedules", "add", "nightly", path, "--cron", "0 3 * * *",
                "--tz", "Europe/Berlin").stdout
    assert out.startswith("schedule nightly added: 0 3 * * * (Europe/Berlin), next fire ")
    show = c.json("schedules", "show", "nightly")
    assert (show["cron"], show["tz"], show["catchup"], show["concurrency"], show["paused"]) == \
        ("0 3 * * *", "Europe/Berlin", "latest", "forbid", False)
    assert len(show["next_fires"]) == 5
    for f in show["next_fires"]:  # 03:00 in Berlin is 01:00 or 02:00 UTC
        assert f["local"].split()[1] == "03:00" and f["local"].split()[2] in ("CET", "CEST")
        assert f["utc"][11:16] in ("01:00", "02:00"), f
    text = c.cli("schedules", "show", "nightly").stdout
    assert "next fires" in text and "concurrency  forbid" in text
    lst = c.json("schedules", "list")
    assert [s["name"] for s in lst] == ["nightly"]
    assert "nightly" in c.cli("schedules").stdout
    assert c.json("schedules", "pause", "nightly")["paused"] is True
    assert c.json("schedules", "show", "nightly")["next_fires"] == []
    assert c.json("schedules", "resume", "nightly")["paused"] is False
    # add again: an update, the counters kept
    upd = c.json("schedules", "add", "nightly", path, "--cron", "@hourly",
                 "--concurrency", "allow")
    assert (upd["created"], upd["cron"], upd["concurrency"]) == (False, "@hourly", "allow")

    def refused(args, want):
        r = c.cli(*args, check=False)
        assert r.returncode != 0 and want in r.stderr, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    refused(["schedules", "add", "bad", path, "--cron", "61 * * * *"],
            "minute field '61': a value out of range (allowed 0-59)")
    refused(["schedules", "add", "bad", path, "--cron", "0 0 31 2 *"], "never fires")
    refused(["schedules", "add", "bad", path, "--cron", "0 0 * * *", "--tz", "Mars/Base"],
            "unknown time zone 'Mars/Base'")
    refused(["schedules", "add", "bad", path, "--cron", "@daily", "--catchup", "some"],
            "bad --catchup 'some'")
    refused(["schedules", "add", "bad", path, "--cron", "@daily", "--concurrency", "x"],
            "bad --concurrency 'x'")
    refused(["schedules", "show", "nope"], "no schedule named 'nope'")
    refused(["schedules", "pause", "nope"], "no schedule named 'nope'")
    assert [s["name"] for s in c.json("schedules", "list")] == ["nightly"]  # nothing lost
    bad = c.write("bad.yaml", "name: b\nschedule:\n  cron: \"0 25 * * *\"\n"
                  "tasks:\n  - {name: a, command: [t]}\n")
    r = c.cli("validate", bad, check=False)
    assert r.returncode != 0 and f"{bad}:3:" in r.stderr and "hour field '25'" in r.stderr
    # a pipeline file's schedule: key makes the schedule named after it
    sub = c.write("hourly.yaml", "name: hourly\nschedule: {cron: \"15 * * * *\", "
                  "tz: America/New_York, catchup: all, max_catchup: 3}\n"
                  "tasks:\n  - {name: a, command: [t]}\n")
    out = c.cli("submit", sub).stdout
    assert out.startswith("schedule hourly added: 15 * * * * (America/New_York)"), out
    s = c.json("schedules", "show", "hourly")
    assert (s["catchup"], s["max_catchup"], s["file"]) == ("all", 3, sub)
    assert c.json("runs", "--schedule", "hourly") == []  # no run until it fires
    assert c.cli("schedules", "rm", "hourly").stdout == "schedule hourly removed\n"
    assert [s["name"] for s in c.json("schedules", "list")] == ["nightly"]
    assert c.json("schedules", "rm", "nightly") == {"removed": "nightly"}
    assert c.json("schedules", "list") == []


def test_fires_exactly_once_across_a_failover_and_catches_up_once(cluster, tmp_path):
    """Under a shifted clock: a fire starts one run, named from the
    schedule and the fire time; kill -9 of the leader right as it starts
    the next one, with a standby running: still exactly one run of that
    fire; no master across 3 fires: one run when one is back (catch-up
    latest), the other two counted as skipped.  And a fire in the hour
    America/New_York skips in spring runs once, at the end of the gap."""
    c = cluster
    clock = tmp_path / "clock"
    set_clock(clock, "2026-01-01 00:02:00")
    c.master_env = faketime_env(clock)
    shared = os.path.join(c.tmp, "master")
    c.start_master("--leader-ttl", "3")
    m2 = c.start_standby("m2", "--leader-ttl", "3", data_dir=shared)
    wait_until(lambda: "standing by" in m2.text(), 15, "the standby")
    c.start_worker("w1")
    c.wait_workers(["w1"])
    path = c.write("nightly.yaml", PIPE)
    out = c.cli("schedules", "add", "nightly", path, "--cron", "*/5 * * * *").stdout
    assert "next fire 2026-01-01 00:05 UTC" in out, out

    set_clock(clock, "2026-01-01 00:04:59")
    run1 = "nightly-20260101-0005"
    wait_until(lambda: stored_runs(c, "nightly-") == [run1], 15, "the 00:05 fire")
    st = c.wait_run(run1)
    assert st["state"] == "succeeded" and st["schedule"] == "nightly"
    assert st["fire_time"].startswith("2026-01-01T00:05:00")
    assert c.cli("logs", run1, "train").stdout == "trained\n"
    assert [r["run_id"] for r in c.json("runs", "--schedule", "nightly")] == [run1]

    # kill -9 of the leader as it starts the run of 00:10
    set_clock(clock, "2026-01-01 00:09:59")
    run2 = "nightly-20260101-0010"
    wait_until(lambda: f"run {run2} started" in c.master.text(), 15, "the 00:10 fire")
    c.master.kill(signal.SIGKILL)
    wait_until(lambda: leads(m2.client_ep), 20, "the standby to lead")
    wait_until(lambda: run2 in stored_runs(c, "nightly-"), 15, "the run of 00:10")
    assert c.wait_run(run2)["state"] == "succeeded"
    assert stored_runs(c, "nightly-") == [run1, run2]

    # no master across the fires of 00:15, 00:20 and 00:25; meanwhile a
    # record that is no schedule lands in etcd: skipped at load, said so
    m2.kill(signal.SIGKILL)
    subprocess.run(["etcdctl", "--endpoints", c.etcd_url, "put", "/trainyard/schedules/junk",
                    "not a schedule"], check=True, capture_output=True)
    set_clock(clock, "2026-01-01 00:26:00")
    c.client_ep = c.client_ep.split(",")[0]
    c.worker_ep = c.worker_ep.split(",")[0]
    c.start_master("--leader-ttl", "3")
    run3 = "nightly-20260101-0025"
    wait_until(lambda: run3 in stored_runs(c, "nightly-"), 20, "one catch-up run")
    assert c.wait_run(run3)["state"] == "succeeded"
    assert stored_runs(c, "nightly-") == [run1, run2, run3]
    s = c.json("schedules", "show", "nightly")
    assert (s["fired"], s["last_run"]) == (3, run3), s
    assert "2 missed fires skipped (catch-up latest)" in s["note"]
    assert s["next_fires"][0]["utc"].startswith("2026-01-01T00:30:00")
    assert "schedule junk in etcd skipped" in c.master.text()
    assert [x["name"] for x in c.json("schedules", "list")] == ["nightly"]

    # daylight saving: 02:30 does not exist on 8 March 2026 in New York
    c.cli("schedules", "rm", "nightly")
    c.cli("schedules", "add", "ny", path, "--cron", "30 2 * * *", "--tz", "America/New_York",
          "--catchup", "none")  # the two months the clock jumps over are not caught up
    set_clock(clock, "2026-03-08 06:59:58")  # 01:59:58 EST
    run4 = "ny-20260308-0700"  # 03:00 EDT, the end of the gap
    wait_until(lambda: stored_runs(c, "ny-") == [run4], 15, "the fire after the gap")
    assert c.wait_run(run4)["state"] == "succeeded"
    nxt = c.json("schedules", "show", "ny")["next_fires"][0]
    assert nxt["local"] == "2026-03-09 02:30 EDT" and nxt["utc"].startswith("2026-03-09T06:30")
    assert task(c.json("status", run4), "train")["state"] == "succeeded"


BRANCHES = """
name: branches
params: {psi: "0.05", gate: "3"}
tasks:
  - name: drift
    metrics: [psi_max]
    command: [sh, -c, "echo 'metric psi_max {{ params.psi }}' >> $TRAINYARD_REPORT"]
  - name: retrain
    when: "drift.psi_max > 0.2"
    command: [sh, -c, "echo retrained"]
  - name: gate
    depends_on: [retrain]
    skip_exit_codes: [3]
    fail_exit_codes: [2]
    retries: 2
    command: [sh, -c, "exit {{ params.gate }}"]
"""


def test_branches_skip_without_failing_the_run(shared):
    """when: on an upstream metric skips the branch or runs it; an exit
    code in skip_exit_codes settles the step skipped (not retried) and the
    run succeeds; one in fail_exit_codes fails it without a retry."""
    c = shared
    path = c.write("branches.yaml", BRANCHES)
    run = c.json("submit", path)["run_id"]
    st = c.wait_run(run)
    assert st["state"] == "succeeded", st
    assert [(t["name"], t["state"]) for t in st["tasks"]] == \
        [("drift", "succeeded"), ("retrain", "skipped"), ("gate", "skipped")]
    assert task(st, "retrain")["reason"] == \
        "skipped: when drift.psi_max > 0.2 (drift.psi_max = 0.05) is false"
    assert "skipped" in c.cli("status", run).stdout

    run = c.json("submit", path, "-p", "psi=0.4")["run_id"]
    st = c.wait_run(run)
    assert st["state"] == "succeeded", st
    assert c.cli("logs", run, "retrain").stdout == "retrained\n"
    gate = task(st, "gate")
    assert (gate["state"], gate["attempt"], gate["reason"]) == \
        ("skipped", 1, "skipped: exit code 3")

    run = c.json("submit", path, "-p", "psi=0.4", "-p", "gate=2")["run_id"]
    st = c.wait_run(run)
    gate = task(st, "gate")
    assert st["state"] == "failed"
    assert (gate["state"], gate["attempt"]) == ("failed", 1)
    assert gate["reason"] == "exit code 2 (not retried: fail_exit_codes)"

    bad = c.write("bad-when.yaml", "name: bw\ntasks:\n  - {name: d, command: [t]}\n"
                  "  - {name: r, command: [t], when: \"d.psi > 1\"}\n")
    r = c.cli("validate", bad, check=False)
    assert r.returncode != 0 and f"{bad}:4: task 'r': when: task 'd' declares no metrics" \
        in r.stderr
