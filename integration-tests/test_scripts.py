"""scripts/cluster.sh: start prints the export line, stop ends what it started;
the simulator replays a seed."""
import json
import os
import subprocess

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
        ep = line.split("=", 1)[1]
        eps = ep.split(",")
        assert len(eps) == 2
        pids = {f[:-4]: int(open(tmp_path / "home" / "pids" / f).read())
                for f in os.listdir(tmp_path / "home" / "pids")}
        assert set(pids) == {"etcd", "master", "master-2", "worker-1", "worker-2"}
        infos = [json.loads(subprocess.run([CLI_BIN, "--master", e, "info", "-o", "json"],
                                           capture_output=True, text=True, timeout=30).stdout)
                 for e in eps]
        assert [(i["leader"], i["pid"]) for i in infos] == \
            [(True, pids["master"]), (False, pids["master-2"])]
        assert infos[1]["leader_node"] == infos[0]["node_id"]
        ws = json.loads(subprocess.run([CLI_BIN, "--master", ep, "workers", "-o", "json"],
                                       capture_output=True, text=True, timeout=30).stdout)
        gpus = {w["id"]: w["gpus"] for w in ws}
        assert gpus == {"worker-1": 1, "worker-2": 0}
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
    assert "seed 7: ok; 10 runs submitted" in runs[0].stdout
    assert runs[0].stdout.rstrip().endswith("1 seed(s), 0 with a violation")
    bad = subprocess.run([sim, "--seeds", "ten"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2
    assert bad.stderr == "trainyard-sim: --seeds needs a positive integer, got 'ten'\n"
    h = subprocess.run([sim, "--help"], capture_output=True, text=True, timeout=30)
    assert h.returncode == 0 and "--seeds N" in h.stdout
