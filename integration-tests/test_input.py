"""Bad input: invalid pipelines leave etcd untouched; garbage and oversize
frames are rejected and counted while a run in progress completes."""
import os
import socket
import subprocess

import pytest
import zmq

from conftest import CLI_BIN, ROOT, task, wait_until
from conftest import pb_len as _pb_len, pb_varint as _pb_varint

INVALID = {
    "cycle.yaml": ("name: c\ntasks:\n  - name: a\n    depends_on: [b]\n    command: [t]\n"
                   "  - name: b\n    depends_on: [a]\n    command: [t]\n",
                   "cycle.yaml:3: dependency cycle: a -> b -> a"),
    "unknown-dep.yaml": ("name: u\ntasks:\n  - name: a\n    depends_on: [zz]\n    command: [t]\n",
                         "unknown-dep.yaml:3: task 'a' depends on unknown task 'zz'"),
    "dup.yaml": ("name: d\ntasks:\n  - name: a\n    command: [t]\n  - name: a\n    command: [t]\n",
                 "dup.yaml:5: duplicate task name 'a'"),
    "unknown-key.yaml": ("name: k\ntasks:\n  - name: a\n    command: [t]\n    retires: 2\n",
                         "unknown-key.yaml:5: unknown task key 'retires'"),
    "bad-res.yaml": ("name: r\ntasks:\n  - name: a\n    command: [t]\n"
                     "    resources: {mem_mb: lots}\n",
                     "bad-res.yaml:5: resources.mem_mb must be an integer"),
    "empty.yaml": ("name: e\ntasks: []\n", "empty.yaml:1: pipeline has no tasks"),
    "syntax.yaml": ("name: s\ntasks: [\n", "syntax.yaml:"),
    "tmpl-ns.yaml": ("name: n\ntasks:\n  - name: a\n    command: \"echo {{ run_id }}\"\n",
                     "tmpl-ns.yaml:3: task 'a' uses unknown template '{{ run_id }}'"),
    "tmpl-param.yaml": ("name: n\nparams: {x: 1}\ntasks:\n  - name: a\n"
                        "    command: [echo, '{{ param.x }}']\n",
                        "tmpl-param.yaml:4: task 'a' uses unknown template '{{ param.x }}'"),
}


@pytest.mark.parametrize("local", [True, False], ids=["cli-checks", "master-checks"])
def test_invalid_pipelines_leave_etcd_untouched(cluster, local):
    cluster.start_master()
    before = cluster.etcd_revision()
    for name, (text, want) in INVALID.items():
        path = cluster.write(name, text)
        args = ["submit", path] + ([] if local else ["--no-local-check"])
        r = cluster.cli(*args, check=False)
        assert r.returncode == 1, name
        assert want in r.stderr, (name, r.stderr)
        assert r.stdout == ""
        if local:
            v = cluster.cli("validate", path, check=False)
            assert v.returncode == 1 and want in v.stderr
    # an undefined -p is refused by the master too
    ok = cluster.write("ok.yaml", "name: ok\nparams: {n: 1}\ntasks:\n  - name: a\n"
                       "    command: ['echo', '{{ params.n }}']\n")
    r = cluster.cli("submit", ok, "-p", "m=2", check=False)
    assert r.returncode == 1 and "unknown param 'm'" in r.stderr
    assert cluster.etcd_revision() == before
    assert cluster.json("runs") == []
    assert cluster.cli("validate", ok).stdout.startswith(ok + ": ok")


def test_garbage_and_oversize_frames_are_rejected(cluster):
    cluster.start_master("--max-frame", "65536")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("""
name: steady
tasks:
  - name: a
    command: "sleep 1; echo a"
  - name: b
    depends_on: [a]
    command: ["echo", "b"]
""")
    cluster.wait_task_state(run, "a", ["running"])
    ctx = zmq.Context()
    try:
        for ep in (cluster.worker_ep, cluster.client_ep):
            s = cluster.raw_socket(ctx, ep, b"intruder", worker=ep == cluster.worker_ep)
            s.send(b"\xff\xfe garbage that is no protobuf")
            s.send(b"\x08\x01" + b"\x00" * 100_000)  # over --max-frame
            s.send_multipart([b"two", b"frames"])
            s.close()
        # and bytes that are not even ZMTP
        host, port = cluster.client_ep[len("tcp://"):].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10)
    finally:
        ctx.term()
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded"
    assert task(st, "b")["state"] == "succeeded"
    info = cluster.json("info")
    assert info["frames_rejected_size"] >= 2
    assert info["frames_rejected_decode"] >= 4
    # still serving everyone
    assert cluster.json("workers")[0]["state"] == "up"


def test_a_register_out_of_bounds_is_refused_and_counted(cluster):
    """Every field of a worker's message is checked: 65 GPUs (the GPU
    bitmask holds 64) is refused with a counted reason, and the worker is
    not registered; the real workers carry on."""
    import struct
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    resources = (_pb_varint(1 << 3 | 1) + struct.pack("<d", 4.0)  # cpus
                 + _pb_varint(3 << 3) + _pb_varint(65))           # gpus
    register = _pb_len(1, b"evil") + _pb_len(2, resources) + _pb_len(3, b"h")
    envelope = _pb_varint(1 << 3) + _pb_varint(1) + _pb_len(10, register)
    ctx = zmq.Context()
    try:
        s = cluster.raw_socket(ctx, cluster.worker_ep, b"evil", worker=True)
        s.send(envelope)
        info = wait_until(lambda: (lambda i: i if i["messages_rejected"] >= 1 else None)(
            cluster.json("info")), what="the register to be counted")
        s.close()
    finally:
        ctx.term()
    assert info["last_rejected"] == "register: more than 64 GPUs"
    assert [w["id"] for w in cluster.json("workers")] == ["w1"]
    run = cluster.submit("name: fine\ntasks:\n  - {name: a, command: [\"true\"]}\n")
    assert cluster.wait_run(run)["state"] == "succeeded"


def test_a_peer_that_keeps_sending_malformed_messages_is_not_heard(cluster):
    """Ten malformed messages within a minute (here registers with 65 GPUs,
    refused by the core, and bytes that do not decode) ban the peer: its
    next message, a well-formed register, is dropped, the ban is counted in
    info and logged; other peers are served."""
    import struct
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])

    def register(gpus):
        resources = (_pb_varint(1 << 3 | 1) + struct.pack("<d", 4.0)
                     + _pb_varint(3 << 3) + _pb_varint(gpus))
        reg = _pb_len(1, b"evil") + _pb_len(2, resources) + _pb_len(3, b"h")
        return _pb_varint(1 << 3) + _pb_varint(1) + _pb_len(10, reg)
    ctx = zmq.Context()
    try:
        s = cluster.raw_socket(ctx, cluster.worker_ep, b"evil", worker=True)
        for i in range(10):
            s.send(register(65) if i % 2 else b"\xff\xfe not protobuf")
        wait_until(lambda: cluster.json("info")["peers_banned"] == 1, what="the ban")
        s.send(register(1))  # well-formed, but from a banned peer
        info = wait_until(lambda: (lambda i: i if i["banned_dropped"] >= 1 else None)(
            cluster.json("info")), what="the dropped register")
        s.close()
    finally:
        ctx.term()
    assert info["messages_rejected"] == 5 and info["frames_rejected_decode"] == 5
    assert "sent 10 malformed messages within 60 s: not heard for 60 s" in cluster.master.text()
    assert [w["id"] for w in cluster.json("workers")] == ["w1"]
    run = cluster.submit("name: fine\ntasks:\n  - {name: a, command: [\"true\"]}\n")
    assert cluster.wait_run(run)["state"] == "succeeded"


def test_deep_yaml_and_over_limit_submits_are_refused_while_a_run_completes(cluster):
    """A raw client's 200 KB frame of nested YAML (it held the old loader's
    loop at 100% CPU for over a minute) is refused with the limit named,
    at once, while a run in progress completes and the worker stays up;
    so is a file over --max-pipeline-tasks."""
    cluster.start_master("--max-pipeline-tasks", "3")
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("name: steady\ntasks:\n  - {name: a, command: [sleep, '1']}\n"
                         "  - {name: b, depends_on: [a], command: ['true']}\n")
    cluster.wait_task_state(run, "a", ["running"])
    deep = b"name: deep\ntasks: " + b"[" * 100_000 + b"]" * 100_000
    submit = _pb_len(1, deep) + _pb_len(2, b"deep.yaml")
    envelope = _pb_varint(1 << 3) + _pb_varint(1) + _pb_varint(2 << 3) + _pb_varint(7) \
        + _pb_len(30, submit)
    ctx = zmq.Context()
    try:
        s = cluster.raw_socket(ctx, cluster.client_ep)
        s.setsockopt(zmq.LINGER, 0)
        s.send(envelope)
        assert s.poll(10_000), "no answer to the deep submit"
        reply = s.recv()
        s.close()
    finally:
        ctx.term()
    assert b"deep.yaml:2: nesting deeper than 32 levels (limit max-pipeline-depth)" in reply
    many = cluster.write("many.yaml", "name: many\ntasks:\n" + "".join(
        f"  - {{name: t{i}, command: ['true']}}\n" for i in range(4)))
    r = cluster.cli("submit", many, check=False)
    assert r.returncode == 1
    assert "many.yaml:3: 4 tasks, more than 3 (limit max-pipeline-tasks)" in r.stderr
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded"
    assert [w["state"] for w in cluster.json("workers")] == ["up"]
    assert [x["run_id"] for x in cluster.json("runs")] == [run]


def test_every_example_pipeline_validates():
    import glob
    paths = sorted(glob.glob(os.path.join(ROOT, "examples", "pipelines", "*.yaml")))
    assert len(paths) >= 4
    for path in paths:
        r = subprocess.run([CLI_BIN, "validate", path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, (path, r.stderr)
        assert r.stdout.startswith(path + ": ok"), r.stdout


@pytest.mark.parametrize("argv,says", [
    (["cli", "--timeout", "5s", "runs"], "--timeout needs a number of seconds"),
    (["cli", "--timeout", "nan", "runs"], "got 'nan'"),
    (["cli", "runs", "--limit", "ten"], "--limit needs a positive integer, got 'ten'"),
    (["cli", "runs", "--limit", "0"], "--limit needs a positive integer"),
    (["cli", "status", "r1", "--wait-after", "-3"], "--wait-after needs a version"),
    (["cli", "logs", "r1", "t", "--attempt", "2x"], "--attempt needs a positive integer"),
    (["master", "--max-frame", " 4096"], "--max-frame needs a positive integer"),
    (["worker", "--cpus", "inf"], "--cpus needs a non-negative number, got 'inf'"),
    (["worker", "--mem-mb", "1e999"], "--mem-mb needs a non-negative number"),
    (["train", "fit", "--epochs", "1e400"], "--epochs: want a number in [1, 1e+06]"),
    (["train", "fit", "--model", "mlp:128,"], "--model: want softmax, linear or mlp:H1,H2"),
    (["train", "fit", "--model", "mlp:128,,64"], "got 'mlp:128,,64'"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_bad_numeric_flags_are_refused(argv, says):
    """Every program parses numbers strictly (common/util ty_parse_*): a
    number with junk, blanks, inf/nan or out of range is an error that says
    which flag and what it got, before anything starts."""
    from conftest import MASTER_BIN, WORKER_BIN, BUILD
    binary = {"cli": CLI_BIN, "master": MASTER_BIN, "worker": WORKER_BIN,
              "train": os.path.join(BUILD, "trainer", "trainyard-train")}[argv[0]]
    r = subprocess.run([binary] + argv[1:], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, TRAINYARD_MASTER="tcp://127.0.0.1:9"))
    assert r.returncode != 0
    assert says in r.stderr, r.stderr


def test_the_cli_says_at_once_when_no_master_answers():
    """No master at the address (or none of several): the CLI says so after
    the connect timeout (2 s, --connect-timeout or
    $TRAINYARD_CONNECT_TIMEOUT), not after the call's 15 s; --version."""
    import re
    import time
    from conftest import free_port
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    dead = f"tcp://127.0.0.1:{free_port()}"
    for extra, env_extra, want in (([], {}, "2.0s"), (["--connect-timeout", "0.3"], {}, "0.3s"),
                                   ([], {"TRAINYARD_CONNECT_TIMEOUT": "0.4"}, "0.4s")):
        t0 = time.monotonic()
        r = subprocess.run([CLI_BIN, "--master", f"{dead},tcp://127.0.0.1:{free_port()}"] + extra +
                           ["runs"], capture_output=True, text=True, timeout=60,
                           env=dict(env, **env_extra))
        took = time.monotonic() - t0
        assert r.returncode == 1 and f"no answer from the master at {dead}," in r.stderr, r.stderr
        assert f"no connection within {want}" in r.stderr, r.stderr
        assert took < 10, took  # not the call's 15 s
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        version = re.search(r"project\(trainyard VERSION (\S+)", f.read()).group(1)
    r = subprocess.run([CLI_BIN, "--version"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == f"trainyard {version}\n"


def test_every_command_answers_help_with_examples():
    """`trainyard CMD --help` for every command the completion script knows
    (and that list is every command of `trainyard --help`): its usage and
    examples, exit 0, nothing asked of a master."""
    import re
    usage = subprocess.run([CLI_BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    listed = set(re.findall(r"^  ([a-z]+) ", usage, re.M))
    script = subprocess.run([CLI_BIN, "completion", "bash"], capture_output=True, text=True,
                            timeout=30).stdout
    cmds = set(re.search(r"compgen -W '([a-z ]+)'", script).group(1).split())
    assert cmds == listed and len(cmds) >= 20, (cmds ^ listed)
    env = dict(os.environ, TRAINYARD_MASTER="tcp://127.0.0.1:9")
    for cmd in sorted(cmds):
        r = subprocess.run([CLI_BIN, cmd, "--help"], capture_output=True, text=True, timeout=5,
                           env=env)
        assert r.returncode == 0, (cmd, r.stderr)
        assert f"\n  {cmd} " in r.stdout and "\nexamples:\n" in r.stdout, (cmd, r.stdout)
        examples = r.stdout.split("\nexamples:\n")[1]
        assert all(line.startswith("  ") for line in examples.splitlines()), examples
        assert f"trainyard {cmd}" in examples or cmd == "completion", examples
