"""scripts/cluster.sh: start prints the export line, stop ends what it started;
the simulator replays a seed."""
import json
import os
import re
import subprocess

import pytest

from conftest import BUILD, CLI_BIN, ROOT


def test_cluster_script_start_status_stop(tmp_path):
    """Two masters (--masters 2): the first leads, the second stands by; the
    export line lists both, and the CLI and workers follow the leader."""
    env = dict(os.environ, TRAINYARD_HOME=str(tmp_path / "home"), TY_BUILD_DIR=BUILD)
    script = os.path.join(ROOT, "scripts", "cluster.sh")
    try:
        r = subprocess.run([script, "start", "--workers", "2", "--masters", "2",
                            "--gpus-on-first", "1"],
                           capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        line = r.stdout.strip().splitlines()[-1]
        assert line.startswith("export TRAINYARD_MASTER=tcp://127.0.0.1:")
        exported = dict(kv.split("=", 1) for kv in line.split()[1:])
        ep = exported["TRAINYARD_MASTER"]
        eps = ep.split(",")
        # everything it started uses CurveZMQ keys it made: the CLI needs them
        keys = os.path.join(str(tmp_path), "home", "keys")
        assert exported["TRAINYARD_MASTER_KEY"] == os.path.join(keys, "master.key")
        assert exported["TRAINYARD_KEY"].startswith(os.path.join(keys, "clients") + "/")
        assert sorted(os.listdir(os.path.join(keys, "workers"))) == \
            ["worker-1.key", "worker-1.key_secret", "worker-2.key", "worker-2.key_secret"]
        cli_env = dict(os.environ, **exported)
        plain = subprocess.run([CLI_BIN, "--master", eps[0], "--timeout", "1", "info"],
                               capture_output=True, text=True, timeout=30)
        assert plain.returncode == 1 and "no answer" in plain.stderr  # no key: not let in
        assert len(eps) == 2
        pids = {f[:-4]: int(open(tmp_path / "home" / "pids" / f).read())
                for f in os.listdir(tmp_path / "home" / "pids")}
        assert set(pids) == {"etcd", "master", "master-2", "worker-1", "worker-2"}
        infos = [json.loads(subprocess.run([CLI_BIN, "--master", e, "info", "-o", "json"],
                                           capture_output=True, text=True, timeout=30,
                                           env=cli_env).stdout)
                 for e in eps]
        assert all(i["curve"] for i in infos)
        assert [(i["leader"], i["pid"]) for i in infos] == \
            [(True, pids["master"]), (False, pids["master-2"])]
        assert infos[1]["leader_node"] == infos[0]["node_id"]
        ws = json.loads(subprocess.run([CLI_BIN, "--master", ep, "workers", "-o", "json"],
                                       capture_output=True, text=True, timeout=30,
                                       env=cli_env).stdout)
        gpus = {w["id"]: w["gpus"] for w in ws}
        assert gpus == {"worker-1": 1, "worker-2": 0}
        # etcd over TLS with client certificates; tasks as the unprivileged user
        with open(tmp_path / "home" / "etcd.url") as f:
            assert f.read().startswith("TRAINYARD_ETCD=https://127.0.0.1:")
        with open(tmp_path / "home" / "logs" / "master.log") as f:
            assert "etcd over TLS (client certificate" in f.read()
        if os.geteuid() == 0:
            with open(tmp_path / "home" / "logs" / "worker-1.log") as f:
                assert "tasks run as trainyard" in f.read()
        # a second start reuses the running cluster
        again = subprocess.run([script, "start"], capture_output=True, text=True, env=env,
                               timeout=60)
        assert again.returncode == 0 and again.stdout.strip() == line
        st = subprocess.run([script, "status"], capture_output=True, text=True, env=env,
                            timeout=60)
        assert st.returncode == 0 and "master: running" in st.stdout
        assert "master-2: running" in st.stdout
    finally:
        r = subprocess.run([script, "stop"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0
    for name, pid in pids.items():
        assert not os.path.exists(f"/proc/{pid}") or \
            "zombie" in open(f"/proc/{pid}/status").read().lower(), name
    st = subprocess.run([script, "status"], capture_output=True, text=True, env=env, timeout=60)
    assert "running" not in st.stdout


def test_simulator_replays_a_seed_and_refuses_bad_flags():
    """trainyard-sim: the same seed gives the same run to the letter; flags
    are checked with a one-line error; --help answers."""
    sim = os.path.join(BUILD, "master", "trainyard-sim")
    runs = [subprocess.run([sim, "--seed", "7", "--runs", "10", "--ms", "5000"],
                           capture_output=True, text=True, timeout=120) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stdout
    assert runs[0].stdout == runs[1].stdout
    assert re.match(r"seed 7: ok; \d+ runs submitted, .* runs of cron fires", runs[0].stdout)
    assert runs[0].stdout.rstrip().endswith("1 seed(s), 0 with a violation")
    bad = subprocess.run([sim, "--seeds", "ten"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert bad.stderr == "trainyard-sim: --seeds needs a positive integer, got 'ten'\n"
    h = subprocess.run([sim, "--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0 and "--seeds N" in h.stdout


CLI_COMMANDS = ["validate", "keygen", "submit", "retry", "runs", "status", "logs", "cancel", "metrics",
                "compare", "artifacts", "get", "lineage", "pin", "gc", "schedules", "models",
                "workers", "info"]


@pytest.mark.parametrize("cmd", CLI_COMMANDS)
def test_every_cli_command_answers_help_without_a_master(cmd):
    """`trainyard CMD --help` prints CMD's usage and exits 0, with no master
    to talk to (the address given answers nothing)."""
    from conftest import CLI_BIN
    r = subprocess.run([CLI_BIN, "--master", "tcp://127.0.0.1:9", cmd, "--help"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith(f"  {cmd} ")


def test_history_checker_finds_a_second_result_and_a_run_left_going(tmp_path):
    """The fault tests' history checker (history.py) is fed a made-up watch:
    it reports a task whose result changed after it was committed, an
    attempt going backwards, and a run that did not end; a sound history
    gives nothing."""
    import base64
    from conftest import pb_varint
    from history import History

    def rec(*pairs):  # (field, varint value)
        return b"".join(pb_varint(f << 3) + pb_varint(v) for f, v in pairs)

    def event(rev, key, val):
        return {"kv": {"key": base64.b64encode(key.encode()).decode(),
                       "value": base64.b64encode(val).decode(), "mod_revision": rev}}

    def check(evs, **kw):
        path = tmp_path / "h.jsonl"
        path.write_text(json.dumps({"Events": evs}) + "\n")
        h = History.__new__(History)
        h.path, h.prefix = str(path), "/trainyard/"
        return h.check(**kw)

    t = "/trainyard/runs/r1/tasks/a"
    good = [event(1, "/trainyard/runs/r1", rec((4, 1))), event(2, t, rec((2, 2), (3, 1))),
            event(3, t, rec((2, 3), (3, 1))), event(4, "/trainyard/runs/r1", rec((4, 2)))]
    assert check(good) == []
    twice = good + [event(5, t, rec((2, 2), (3, 2)))]
    assert any("after its result" in v for v in check(twice))
    back = good[:2] + [event(3, t, rec((2, 2), (3, 0)))] + good[3:]
    assert any("attempt 0 after attempt 1" in v for v in check(back))
    going = good[:3]
    assert check(going) == ["run r1 did not end (state 1)"]
    assert check(going, runs_may_continue=True) == []
