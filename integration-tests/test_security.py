"""CurveZMQ keys (issue 19, points 1 and 2): trainyard keygen, a master whose
sockets accept only the keys in its sets, workers known by their keys, and
a master that will not run without keys except on loopback with --insecure."""
import json
import os
import stat
import subprocess

from conftest import CLI_BIN, MASTER_BIN, free_port, wait_until


def keygen(name, d):
    r = subprocess.run([CLI_BIN, "keygen", name, "--dir", str(d), "-o", "json"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_keygen_writes_a_pair_and_never_replaces_one(tmp_path):
    k = keygen("alice", tmp_path)
    assert k == {"name": "alice", "public": f"{tmp_path}/alice.key",
                 "secret": f"{tmp_path}/alice.key_secret"}
    assert stat.S_IMODE(os.stat(k["secret"]).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(k["public"]).st_mode) == 0o644
    pub, sec = open(k["public"]).read(), open(k["secret"]).read()
    assert 'name = "alice"' in pub and "public-key" in pub and "secret-key" not in pub
    assert "secret-key" in sec
    again = subprocess.run([CLI_BIN, "keygen", "alice", "--dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=30)
    assert again.returncode == 1 and "exists already" in again.stderr
    assert open(k["secret"]).read() == sec  # nothing lost
    bad = subprocess.run([CLI_BIN, "keygen", "../up"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "bad key name '../up'" in bad.stderr


def test_a_master_without_keys_runs_only_on_loopback_with_insecure(tmp_path):
    base = [MASTER_BIN, "--etcd", "http://127.0.0.1:9", "--data-dir", str(tmp_path)]

    def refused(args, want):
        r = subprocess.run(base + args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and want in r.stderr, r.stderr
    refused([], "no --key: give the master a key")
    refused(["--insecure", "--client-bind", "tcp://0.0.0.0:7000"],
            "--insecure binds loopback addresses only (127.0.0.0/8, ::1), not tcp://0.0.0.0:7000")
    refused(["--key", "k.key_secret"], "--key needs --client-keys DIR and --worker-keys DIR")


def test_curve_lets_in_only_the_keys_in_its_sets(cluster, tmp_path):
    """Master, worker and user with their own keys: a run goes through.
    A client with no key (plaintext) gets no answer; one whose key is not
    in the set is refused at the handshake, counted and logged with its
    address; a worker that claims an id that is not its key's name is
    refused, and so is one with a key the master does not know."""
    c = cluster
    keys = tmp_path / "keys"
    for name, where in (("master", "."), ("alice", "clients"), ("w1", "workers"),
                        ("mallory", "."), ("w9", ".")):
        keygen(name, keys / where)
    mkey = str(keys / "master.key")
    c.start_master("--key", str(keys / "master.key_secret"),
                   "--client-keys", str(keys / "clients"), "--worker-keys", str(keys / "workers"),
                   wait_ready=False)
    alice = dict(os.environ, TRAINYARD_KEY=str(keys / "clients" / "alice.key_secret"),
                 TRAINYARD_MASTER_KEY=mkey)

    def cli(env, *args, timeout_s="5"):
        return subprocess.run([CLI_BIN, "--master", c.client_ep, "--timeout", timeout_s] +
                              list(args), capture_output=True, text=True, env=env, timeout=60)
    wait_until(lambda: cli(alice, "info").returncode == 0, 20, "the master to answer alice")
    info = json.loads(cli(alice, "info", "-o", "json").stdout)
    assert info["curve"] is True and info["auth_refused"] == 0
    c.start_worker("w1", "--key", str(keys / "workers" / "w1.key_secret"), "--master-key", mkey)
    wait_until(lambda: any(w["id"] == "w1" and w["state"] == "up" for w in
                           json.loads(cli(alice, "workers", "-o", "json").stdout)), 20, "w1")
    path = c.write("hello.yaml", "name: hello\ntasks:\n  - {name: a, command: [echo, hi]}\n")
    run = json.loads(cli(alice, "submit", path, "-o", "json").stdout)["run_id"]
    st = json.loads(cli(alice, "status", run, "--wait", "-o", "json", timeout_s="60").stdout)
    assert st["state"] == "succeeded"
    assert cli(alice, "logs", run, "a").stdout == "hi\n"

    # no key at all: the handshake never completes, nothing is answered
    plain = dict(os.environ)
    plain.pop("TRAINYARD_KEY", None)
    plain.pop("TRAINYARD_MASTER_KEY", None)
    r = cli(plain, "runs", timeout_s="1")
    assert r.returncode == 1 and "no answer from the master" in r.stderr, r.stderr
    # a key the master does not know: refused, counted, logged with the address
    mallory = dict(alice, TRAINYARD_KEY=str(keys / "mallory.key_secret"))
    r = cli(mallory, "runs", timeout_s="1")
    assert r.returncode == 1 and "no answer from the master" in r.stderr
    info = json.loads(cli(alice, "info", "-o", "json").stdout)
    assert info["auth_refused"] >= 1
    assert info["last_auth_refused"].startswith("client 127.0.0.1: unknown key"), info
    assert "refused a client connection from 127.0.0.1: unknown key" in c.master.text()
    # a worker is its key: w1's key under another id, and an unknown key
    c.start_worker("w2", "--key", str(keys / "workers" / "w1.key_secret"), "--master-key", mkey)
    c.start_worker("w9", "--key", str(keys / "w9.key_secret"), "--master-key", mkey)
    wait_until(lambda: "refused a message from worker 'w2': the key of 'w1'" in c.master.text()
               and "refused a worker connection from 127.0.0.1: unknown key" in c.master.text(),
               20, "both workers refused")
    ids = [w["id"] for w in json.loads(cli(alice, "workers", "-o", "json").stdout)]
    assert ids == ["w1"]
    # a key added to the set counts for the next connection (ZeroMQ does not
    # try again after a refused handshake: the worker is started again)
    os.rename(keys / "w9.key", keys / "workers" / "w9.key")
    c.workers["w9"].kill()
    c.start_worker("w9", "--key", str(keys / "w9.key_secret"), "--master-key", mkey)
    wait_until(lambda: "w9" in [w["id"] for w in json.loads(
        cli(alice, "workers", "-o", "json").stdout)], 20, "w9 let in once its key is known")


def test_params_are_data_in_every_kind_of_command(cluster, tmp_path):
    """Issue 19 point 6: a value substituted into a shell script stays one
    word of data wherever it stands; argv and env get it as it is; the
    built-in values are rendered on the worker."""
    flag = tmp_path / "pwned"
    value = f"x'; touch {flag}; echo '$(touch {flag})\" `touch {flag}` two  words"
    cluster.start_master()
    cluster.start_worker("w1")
    cluster.wait_workers(["w1"])
    run = cluster.submit("""
name: quoting
params: {v: plain}
tasks:
  - name: bare
    command: "printf '[%s]' {{ params.v }}"
  - name: dq
    command: "printf '%s' \\"[{{ params.v }}]\\""
  - name: sq
    command: "printf '%s' '[{{ params.v }}]'"
  - name: subst
    command: "printf '%s' \\"$(printf '[%s]' {{ params.v }})\\""
  - name: shc
    command: [sh, -c, "printf '[%s]' {{ params.v }}"]
  - name: argv
    command: [printf, "[%s]", "{{ params.v }}"]
  - name: env
    env: {V: "{{ params.v }}"}
    command: "printf '[%s]' \\"$V\\""
  - name: builtins
    command: "printf '%s|' {{ run.id }} {{ task.name }} {{ task.attempt }}"
""", f"v={value}")
    st = cluster.wait_run(run)
    assert st["state"] == "succeeded", st
    for t in ("bare", "dq", "sq", "subst", "shc", "argv", "env"):
        assert cluster.cli("logs", run, t).stdout == f"[{value}]", t
    assert cluster.cli("logs", run, "builtins").stdout == f"{run}|builtins|1|"
    assert not flag.exists()


def test_runs_and_schedules_have_owners_and_only_they_or_admins_change_them(cluster, tmp_path):
    """Issue 19 point 3: a run is its submitter's (the user its key names);
    runs and status show the owner; another user's cancel, or change of a
    schedule, is refused with a one-line error and an audit line on the
    master (who, what, from where); a key in --admin-keys may."""
    c = cluster
    keys = tmp_path / "keys"
    for name, where in (("master", "."), ("alice", "clients"), ("bob", "clients"),
                        ("root", "admins"), ("w1", "workers")):
        keygen(name, keys / where)
    mkey = str(keys / "master.key")
    c.start_master("--key", str(keys / "master.key_secret"), "--client-keys",
                   str(keys / "clients"), "--worker-keys", str(keys / "workers"),
                   "--admin-keys", str(keys / "admins"), wait_ready=False)
    env = {u: dict(os.environ, TRAINYARD_KEY=str(keys / where / f"{u}.key_secret"),
                   TRAINYARD_MASTER_KEY=mkey)
           for u, where in (("alice", "clients"), ("bob", "clients"), ("root", "admins"))}

    def cli(user, *args):
        return subprocess.run([CLI_BIN, "--master", c.client_ep, "--timeout", "10"] + list(args),
                              capture_output=True, text=True, env=env[user], timeout=60)
    wait_until(lambda: cli("alice", "info").returncode == 0, 20, "the master to answer alice")
    c.start_worker("w1", "--key", str(keys / "workers" / "w1.key_secret"), "--master-key", mkey)
    path = c.write("slow.yaml", "name: slow\ntasks:\n  - {name: a, command: [sleep, '30']}\n")
    run = json.loads(cli("alice", "submit", path, "-o", "json").stdout)["run_id"]
    runs = json.loads(cli("bob", "runs", "-o", "json").stdout)
    assert [(r["run_id"], r["owner"]) for r in runs] == [(run, "alice")]
    assert json.loads(cli("bob", "status", run, "-o", "json").stdout)["owner"] == "alice"
    assert " owner alice " in cli("bob", "status", run).stdout

    r = cli("bob", "cancel", run)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"trainyard: run {run} belongs to alice: only alice or an admin (--admin-keys) "
        "may cancel it"], r.stderr
    wait_until(lambda: f"audit: user=bob from=127.0.0.1 cancel run {run}: refused (owned by "
               "alice)" in c.master.text(), 10, "the refusal's audit line")
    assert json.loads(cli("alice", "status", run, "-o", "json").stdout)["state"] == "running"

    # schedules: the adder's; another user may not change or remove one
    sched = c.write("nightly.yaml", "name: nightly\ntasks:\n  - {name: a, command: [true]}\n")
    assert cli("alice", "schedules", "add", "nightly", sched, "--cron", "0 3 * * *").returncode == 0
    assert json.loads(cli("bob", "schedules", "show", "nightly", "-o", "json").stdout)[
        "owner"] == "alice"
    for args in (("rm", "nightly"), ("pause", "nightly"),
                 ("add", "nightly", sched, "--cron", "0 4 * * *")):
        r = cli("bob", "schedules", *args)
        assert r.returncode == 1 and "schedule nightly belongs to alice" in r.stderr, (args, r)
    assert cli("root", "schedules", "pause", "nightly").returncode == 0
    # workers are the cluster's: only an admin drains one
    r = cli("bob", "workers", "drain", "w1")
    assert r.returncode == 1 and "only an admin (--admin-keys) may drain a worker" in r.stderr
    assert "audit: user=bob from=127.0.0.1 drain worker w1: refused (not an admin)" in \
        c.master.text()
    assert cli("root", "workers", "drain", "w1").returncode == 0
    assert cli("root", "workers", "undrain", "w1").returncode == 0

    # an admin may cancel anyone's run; the audit line says so
    r = cli("root", "cancel", run)
    assert r.returncode == 0, r.stderr
    wait_until(lambda: f"audit: user=root (admin) from=127.0.0.1 cancel run {run}: allowed (an "
               "admin; owned by alice)" in c.master.text(), 10, "the admin's audit line")
    st = json.loads(cli("alice", "status", run, "--wait", "-o", "json").stdout)
    assert st["state"] == "cancelled"

    # models: whose is the first version's (a step's: its run's owner's), and
    # who made a version is their key's user, whatever USER says
    made = c.write("made.yaml", "name: made\ntasks:\n  - {name: m, outputs: [w.bin], command: "
                   "'echo 1 > w.bin; echo \"register am w.bin\" >> $TRAINYARD_REPORT'}\n")
    run2 = json.loads(cli("alice", "submit", made, "-o", "json").stdout)["run_id"]
    assert json.loads(cli("alice", "status", run2, "--wait", "-o", "json").stdout)[
        "state"] == "succeeded"
    env["bob"]["USER"] = "mallory"
    assert cli("bob", "models", "register", "bm", "--from", f"{run2}/m/w.bin").returncode == 0
    models = {m["name"]: m for m in json.loads(cli("bob", "models", "list", "-o", "json").stdout)}
    assert models["am"]["owner"] == "alice" and models["bm"]["owner"] == "bob", models
    versions = json.loads(cli("bob", "models", "list", "bm", "-o", "json").stdout)
    assert versions[0]["by"] == "bob", versions


def _z85(path, field):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(field + " = "):
                return line.split('"')[1].encode()
    raise KeyError(field)


def test_a_revoked_key_loses_its_live_session_and_plaintext_is_counted(cluster, tmp_path):
    """Issue 19 point 1: `trainyard keys revoke` (or removing a key file)
    drops the live session of that key within 5 s: a worker is lost at
    once (its task runs again elsewhere) and nothing it sends is heard; a
    user's next request on a connection made before is refused.  SIGHUP
    reads the keys again; a plaintext peer is refused, counted and logged
    with its address."""
    import re
    import signal
    import time

    import zmq
    from conftest import pb_len, pb_varint, task
    c = cluster
    keys = tmp_path / "keys"
    for name, where in (("master", "."), ("alice", "clients"), ("bob", "clients"),
                        ("w1", "workers"), ("w2", "workers")):
        keygen(name, keys / where)
    mkey = str(keys / "master.key")
    c.start_master("--key", str(keys / "master.key_secret"), "--client-keys",
                   str(keys / "clients"), "--worker-keys", str(keys / "workers"), wait_ready=False)
    alice = dict(os.environ, TRAINYARD_KEY=str(keys / "clients" / "alice.key_secret"),
                 TRAINYARD_MASTER_KEY=mkey)

    def cli(*args, env=alice):
        return subprocess.run([CLI_BIN, "--master", c.client_ep, "--timeout", "10"] + list(args),
                              capture_output=True, text=True, env=env, timeout=60)
    wait_until(lambda: cli("info").returncode == 0, 20, "the master to answer alice")
    for w in ("w1", "w2"):
        c.start_worker(w, "--cpus", "1", "--key", str(keys / "workers" / f"{w}.key_secret"),
                       "--master-key", mkey)
    wait_until(lambda: len([w for w in json.loads(cli("workers", "-o", "json").stdout)
                            if w["state"] == "up"]) == 2, 20, "both workers up")

    # bob's live session: one connection, one handshake, used before and after
    ctx = zmq.Context()
    bob = ctx.socket(zmq.DEALER)
    bob.setsockopt(zmq.LINGER, 0)
    bob.curve_secretkey = _z85(keys / "clients" / "bob.key_secret", "secret-key")
    bob.curve_publickey = _z85(keys / "clients" / "bob.key", "public-key")
    bob.curve_serverkey = _z85(keys / "master.key", "public-key")
    bob.connect(c.client_ep)
    info = pb_varint(1 << 3) + pb_varint(1) + pb_varint(2 << 3) + pb_varint(7) + pb_len(43, b"")

    def bob_asks():
        bob.send(info)
        return bob.recv() if bob.poll(5000) else b""
    assert b"revoked" not in bob_asks()

    path = c.write("long.yaml", "name: long\ntasks:\n  - {name: a, command: [sleep, '60']}\n")
    run = json.loads(cli("submit", path, "-o", "json").stdout)["run_id"]

    def a():
        return task(json.loads(cli("status", run, "-o", "json").stdout), "a")
    wait_until(lambda: a()["state"] == "running", 20, "the task running")
    first = a()["worker"]
    other = "w2" if first == "w1" else "w1"
    t0 = time.monotonic()
    r = cli("keys", "revoke", first, "--dir", str(keys / "workers"))
    assert r.returncode == 0 and f"revoked {first}" in r.stdout, r.stderr
    r = cli("keys", "revoke", "bob", "--dir", str(keys / "clients"), "-o", "json")
    assert json.loads(r.stdout)["moved_to"].endswith("bob.key.revoked")
    wait_until(lambda: f"worker {first} lost: its key was revoked" in c.master.text(), 5,
               "the revoked worker lost within 5 s")
    assert time.monotonic() - t0 < 5
    # the attempt runs again on the other worker; the revoked one is not heard
    wait_until(lambda: (lambda t: t["attempt"] == 2 and t["worker"] == other and
                        t["state"] == "running")(a()), 20, "the task running again elsewhere")
    wait_until(lambda: f"refused a message from worker '{first}' from 127.0.0.1: its key was "
               "revoked" in c.master.text(), 10, "the revoked worker's messages refused")
    assert b"it was revoked" in bob_asks()
    listed = {k["name"]: k["state"] for k in
              json.loads(cli("keys", "list", "--dir", str(keys / "clients"), "-o", "json").stdout)}
    assert listed == {"alice": "active", "bob": "revoked"}

    # SIGHUP reads the sets again
    os.kill(c.master.pid, signal.SIGHUP)
    wait_until(lambda: "keys read again: 1 users, 0 admins, 1 workers" in c.master.text(), 10,
               "the reload on SIGHUP")

    # a plaintext peer never gets in: counted and logged with its address
    before = json.loads(cli("info", "-o", "json").stdout)["auth_refused"]
    ctx2 = zmq.Context()
    plain = ctx2.socket(zmq.DEALER)
    plain.setsockopt(zmq.LINGER, 0)
    plain.connect(c.client_ep)
    plain.send(info)
    wait_until(lambda: re.search(r"refused a client connection from 127\.0\.0\.1: a (plaintext "
                                 r"\(NULL\) handshake|handshake the peer broke off)",
                                 c.master.text()), 10, "the plaintext handshake logged")
    assert json.loads(cli("info", "-o", "json").stdout)["auth_refused"] > before
    assert not plain.poll(200)
    plain.close()
    ctx2.term()
    bob.close()
    ctx.term()
    cli("cancel", run)


def test_etcd_over_tls_with_client_certificates(cluster, tmp_path):
    """Issue 19 point 4: scripts/etcd-tls.sh makes a CA and certificates; an
    etcd that requires client certificates refuses a client without one;
    the master with --etcd-cacert/--etcd-cert/--etcd-key runs a pipeline
    through it; a master given TLS settings refuses a plaintext endpoint."""
    import ssl
    import urllib.error
    import urllib.request
    from conftest import ROOT, task
    tls = tmp_path / "tls"
    r = subprocess.run([os.path.join(ROOT, "scripts", "etcd-tls.sh"), str(tls)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(tls / "master-key.pem").st_mode) == 0o600
    c = cluster
    c.start_etcd(tls=str(tls))
    assert c.etcd_url.startswith("https://")
    # no client certificate: refused at the handshake
    bare = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    try:
        urllib.request.urlopen(c.etcd_url + "/health", timeout=5, context=bare)
        refused = False
    except (urllib.error.URLError, ssl.SSLError, ConnectionError):
        refused = True
    assert refused, "etcd answered a client without a certificate"
    certs = ["--etcd-cacert", str(tls / "ca.pem"), "--etcd-cert", str(tls / "master.pem"),
             "--etcd-key", str(tls / "master-key.pem")]
    # TLS settings and a plaintext endpoint: the master will not start
    r = subprocess.run([MASTER_BIN, "--etcd", c.etcd_url.replace("https", "http"), "--insecure",
                        "--client-bind", f"tcp://127.0.0.1:{free_port()}",
                        "--worker-bind", f"tcp://127.0.0.1:{free_port()}",
                        "--data-dir", str(tmp_path / "m0")] + certs,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "is not https:// (with TLS settings the master never talks plaintext to etcd)" in \
        r.stderr, r.stderr
    c.start_master(*certs)
    assert "etcd over TLS (client certificate" in c.master.text()
    c.start_worker("w1")
    c.wait_workers(["w1"])
    run = c.submit("name: tls\ntasks:\n  - {name: a, command: [echo, over-tls]}\n")
    st = c.wait_run(run)
    assert st["state"] == "succeeded" and task(st, "a")["exit_code"] == 0
    assert c.cli("logs", run, "a").stdout == "over-tls\n"


def test_tasks_run_as_an_unprivileged_user(cluster):
    """Issue 19 point 5: a worker started as root runs each attempt as
    --run-as USER with its own primary group and no other, in a directory
    it owns; the task cannot read the worker's or the master's key, nor
    signal the worker; an MPI step runs as that user (no
    --allow-run-as-root)."""
    import pwd
    import shutil
    import tempfile
    import pytest
    if os.geteuid() != 0:
        pytest.skip("needs root to switch users")
    try:
        pw = pwd.getpwnam("trainyard")
    except KeyError:
        pytest.fail("no user trainyard: scripts/install-deps.sh creates it")
    # keys in a directory the task can reach: only their own modes guard them
    keys = tempfile.mkdtemp(prefix="ty-runas-")
    try:
        os.chmod(keys, 0o755)
        for name, where in (("master", "."), ("w1", "workers"), ("tester", "clients")):
            keygen(name, os.path.join(keys, where))
        for d in ("workers", "clients"):
            os.chmod(os.path.join(keys, d), 0o755)
        c = cluster
        mkey = os.path.join(keys, "master.key")
        c.start_master("--key", os.path.join(keys, "master.key_secret"),
                       "--client-keys", os.path.join(keys, "clients"),
                       "--worker-keys", os.path.join(keys, "workers"), wait_ready=False)
        env = dict(os.environ, TRAINYARD_KEY=os.path.join(keys, "clients", "tester.key_secret"),
                   TRAINYARD_MASTER_KEY=mkey, TRAINYARD_MASTER=c.client_ep)

        def cli(*args):
            return subprocess.run([CLI_BIN, "--timeout", "10"] + list(args), capture_output=True,
                                  text=True, env=env, timeout=120)
        wait_until(lambda: cli("info").returncode == 0, 20, "the master")
        # (the work directory's parents must let the user through, as
        # /var/lib/trainyard does; tmp_path's do not)
        w = c.start_worker("w1", "--run-as", "trainyard", "--work-dir", os.path.join(keys, "work"),
                           "--key", os.path.join(keys, "workers", "w1.key_secret"),
                           "--master-key", mkey)
        wait_until(lambda: '"up"' in cli("workers", "-o", "json").stdout, 20, "w1 up")
        wkey = os.path.join(keys, "workers", "w1.key_secret")
        path = c.write("runas.yaml", f"""
name: runas
tasks:
  - name: who
    command: "id -un; id -gn; id -G | wc -w; stat -c %U:%a .; echo $HOME; touch mine"
  - name: keys
    command: "cat {wkey} {keys}/master.key_secret; echo rc=$?"
  - name: signal
    command: "kill -0 {w.pid}; echo rc=$?"
  - name: mpi
    kind: mpi
    np: 2
    command: [id, -un]
""")
        run = json.loads(cli("submit", path, "-o", "json").stdout)["run_id"]
        st = json.loads(cli("status", run, "--wait", "-o", "json").stdout)
        assert st["state"] == "succeeded", st

        def logs(t):
            return cli("logs", run, t).stdout
        assert logs("who").split("\n")[:5] == ["trainyard", "trainyard", "1", "trainyard:700",
                                               pw.pw_dir]
        out = logs("keys")
        # (stdout and stderr reach the log in either order)
        assert out.count("Permission denied") == 2 and "rc=1\n" in out, out
        assert "-----BEGIN" not in out and "secret-key" not in out
        out = logs("signal")
        assert "Operation not permitted" in out and "rc=1\n" in out, out
        assert sorted(logs("mpi").splitlines()) == ["[rank 0] trainyard", "[rank 1] trainyard"]
        assert "tasks run as trainyard" in w.text()
    finally:
        shutil.rmtree(keys, ignore_errors=True)
