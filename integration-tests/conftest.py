"""Fixtures that start a real Trainyard cluster on 127.0.0.1: a private etcd
(free ports, temporary data dir), a master and workers, all stopped by PID."""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
import base64
import contextlib
import re

import pytest

SANITIZER_RE = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("TY_BUILD_DIR", os.path.join(ROOT, "build", "release")))
MASTER_BIN = os.path.join(BUILD, "master", "trainyard-master")
WORKER_BIN = os.path.join(BUILD, "worker", "trainyard-worker")
CLI_BIN = os.path.join(BUILD, "cli", "trainyard")
ETCD_BIN = os.environ.get("TY_ETCD_BIN", "/usr/bin/etcd")
LOG_ARGS = ["--log-level", os.environ["TY_LOG_LEVEL"]] if os.environ.get("TY_LOG_LEVEL") else []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=15.0, what="condition", interval=0.05):
    """Poll a condition that has no event to wait on (a process starting up,
    a process going away), bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def pids_matching(marker):
    """PIDs of processes whose command line contains marker."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and int(d) != os.getpid():
            out.append(int(d))
    return out


def pb_varint(n):
    """A protobuf varint, for tests that write raw messages."""
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def pb_len(field, payload):
    """A length-delimited protobuf field."""
    return pb_varint(field << 3 | 2) + pb_varint(len(payload)) + payload


class Proc:
    def __init__(self, name, args, log_path, env=None):
        self.name = name
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.pid, sig)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.p.wait(timeout=10)
        self.log.close()

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_env(stamp_file):
    """The environment of a process whose wall clock reads stamp_file
    (libfaketime's "@YYYY-MM-DD HH:MM:SS", running on from there; rewritten
    while it runs, the clock jumps).  Monotonic time stays real, so timers
    and leases behave."""
    env = dict(os.environ)
    env.update({"LD_PRELOAD": LIBFAKETIME, "FAKETIME_TIMESTAMP_FILE": str(stamp_file),
                "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                # ASan wants to come first; libfaketime only wraps clock calls
                "ASAN_OPTIONS": ":".join(x for x in (os.environ.get("ASAN_OPTIONS"),
                                                     "verify_asan_link_order=0") if x)})
    return env


class Cluster:
    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.procs = []
        self.etcd_url = None
        self.etcd_ssl = None
        self.client_ep = None
        self.http_url = self.http_token = None
        self.worker_ep = None
        self.workers = {}
        self.master = None
        self.master_args = []
        self.master_env = None  # e.g. a shifted clock (faketime_env)
        # everything runs with CurveZMQ keys made here (the master, each
        # worker, a user whose key the CLI calls get); TY_CURVE=0: --insecure
        self.curve = os.environ.get("TY_CURVE", "1") != "0"
        self.keys = os.path.join(self.tmp, "keys")
        self.history = None
        self.runs_may_continue = False

    # ---- keys ----
    def raw_socket(self, ctx, ep, identity=None, worker=False):
        """A pyzmq DEALER connected to ep (raw frames, for the bad-input
        tests); with keys, a CURVE client: on the worker socket with a key
        named after its identity in the workers' set, on the client socket
        with the tester's key."""
        import zmq
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 1000)
        if identity:
            s.setsockopt(zmq.IDENTITY, identity)
        if self.curve:
            secret = (self._keygen(identity.decode(), "workers") if worker
                      else self._keygen("tester", "clients"))
            s.curve_secretkey = z85_of(secret, "secret-key")
            s.curve_publickey = z85_of(secret[:-len("_secret")], "public-key")
            s.curve_serverkey = z85_of(os.path.join(self.keys, "master.key"), "public-key")
        s.connect(ep)
        return s

    def _keygen(self, name, where):
        d = os.path.join(self.keys, where)
        if not os.path.exists(os.path.join(d, name + ".key_secret")):
            subprocess.run([CLI_BIN, "keygen", name, "--dir", d], check=True,
                           capture_output=True, timeout=30)
        return os.path.join(d, name + ".key_secret")

    def _security_args(self, extra):
        """The master's key flags (or --insecure) unless the test gave its own."""
        if "--key" in extra or "--insecure" in extra:
            return list(extra)
        if not self.curve:
            return ["--insecure"] + list(extra)
        key = self._keygen("master", ".")
        user = self._keygen("tester", "clients")
        os.makedirs(os.path.join(self.keys, "workers"), exist_ok=True)
        # what the tests run (this CLI, and their own subprocesses) uses the user's key
        os.environ["TRAINYARD_KEY"] = user
        os.environ["TRAINYARD_MASTER_KEY"] = os.path.join(self.keys, "master.key")
        # the tester is an admin too (it drains workers)
        admins = os.path.join(self.keys, "admins")
        os.makedirs(admins, exist_ok=True)
        shutil.copy(user[:-len("_secret")], admins)
        return ["--key", key, "--client-keys", os.path.join(self.keys, "clients"),
                "--worker-keys", os.path.join(self.keys, "workers"),
                "--admin-keys", admins] + list(extra)

    # ---- processes ----
    def start_etcd(self, tls=None):
        """etcd on free ports; with tls (a directory of scripts/etcd-tls.sh's
        files) over https with client certificates required."""
        cport, pport = free_port(), free_port()
        self.etcd_url = f"{'https' if tls else 'http'}://127.0.0.1:{cport}"
        self.etcd_ssl = None
        purl = f"http://127.0.0.1:{pport}"
        extra = []
        if tls:
            import ssl
            extra = ["--client-cert-auth", "--trusted-ca-file", f"{tls}/ca.pem",
                     "--cert-file", f"{tls}/etcd.pem", "--key-file", f"{tls}/etcd-key.pem"]
            self.etcd_ssl = ssl.create_default_context(cafile=f"{tls}/ca.pem")
            self.etcd_ssl.load_cert_chain(f"{tls}/master.pem", f"{tls}/master-key.pem")
        name = "etcd-tls" if tls else "etcd"
        p = Proc("etcd", [ETCD_BIN, "--data-dir", os.path.join(self.tmp, name),
                          "--listen-client-urls", self.etcd_url,
                          "--advertise-client-urls", self.etcd_url,
                          "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                          "--initial-cluster", f"default={purl}"] + extra,
                 os.path.join(self.tmp, name + ".log"))
        self.procs.append(p)
        wait_until(self._etcd_healthy, 20, "etcd to become healthy")
        return p

    def watch_history(self, runs_may_continue=False):
        """Record every run and task record committed from now on; the
        fixture checks the history when the test ends (history.py)."""
        from history import History
        self.runs_may_continue = runs_may_continue
        self.history = History("etcdctl", self.etcd_url, "/trainyard/",
                               os.path.join(self.tmp, "history.jsonl"))
        return self.history

    def _etcd_healthy(self):
        try:
            with urllib.request.urlopen(self.etcd_url + "/health", timeout=1,
                                        context=self.etcd_ssl) as r:
                return r.status == 200
        except OSError:
            return False

    def start_master(self, *extra, wait_ready=True):
        if self.client_ep is None:
            self.client_ep = f"tcp://127.0.0.1:{free_port()}"
            self.worker_ep = f"tcp://127.0.0.1:{free_port()}"
            self.master_args = list(extra)
        args = [MASTER_BIN, "--etcd", self.etcd_url, "--node-id", "m1",
                "--client-bind", self.client_ep, "--worker-bind", self.worker_ep,
                "--data-dir", os.path.join(self.tmp, "master"),
                "--heartbeat-ms", "200", "--worker-lease-ms", "2000"] + LOG_ARGS + \
            self._http_args(self.master_args) + self._security_args(self.master_args)
        self.master = Proc("master", args, os.path.join(self.tmp, "master.log"),
                           env=self.master_env)
        self.procs.append(self.master)
        if wait_ready:
            wait_until(lambda: self.cli("info", check=False).returncode == 0, 20,
                       "the master to answer")
        return self.master

    def _http_args(self, extra):
        """The master's HTTP server on a free loopback port (self.http_url;
        kept across restarts), with a tokens file naming the tester, an
        admin (self.http_token)."""
        if "--http-bind" in extra:
            return []
        if self.http_url is None:
            self.http_url = f"http://127.0.0.1:{free_port()}"
            self.http_token = os.urandom(16).hex()
            with open(os.path.join(self.tmp, "http-tokens"), "w") as f:
                f.write(f"tester {self.http_token} admin\n")
        return ["--http-bind", self.http_url[len("http://"):],
                "--http-tokens", os.path.join(self.tmp, "http-tokens")]

    def http(self, path, body=None, token=True, method=None, timeout=30):
        """(status, headers, body bytes) of a request to the master's HTTP server."""
        import urllib.error
        req = urllib.request.Request(self.http_url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
        if token:
            req.add_header("Authorization", "Bearer " + self.http_token)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def http_json(self, path, **kw):
        status, _, body = self.http(path, **kw)
        assert status == 200, (status, body)
        return json.loads(body)

    def start_standby(self, node, *extra, data_dir=None):
        """Another master (after start_master) with its own endpoints; the
        cluster's client and worker addresses become the lists of all."""
        cep, wep = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        args = [MASTER_BIN, "--etcd", self.etcd_url, "--node-id", node,
                "--client-bind", cep, "--worker-bind", wep,
                "--data-dir", data_dir or os.path.join(self.tmp, "master-" + node),
                "--heartbeat-ms", "200", "--worker-lease-ms", "2000"] + LOG_ARGS + \
            self._security_args(extra)
        p = Proc(node, args, os.path.join(self.tmp, f"master-{node}.log"), env=self.master_env)
        self.procs.append(p)
        p.client_ep, p.worker_ep = cep, wep
        self.client_ep += "," + cep
        self.worker_ep += "," + wep
        return p

    def start_worker(self, wid, *extra):
        args = [WORKER_BIN, "--master", self.worker_ep, "--id", wid,
                "--work-dir", os.path.join(self.tmp, "work-" + wid),
                "--kill-grace-ms", "1000"] + LOG_ARGS + list(extra)
        if "--run-as" not in extra:  # tests' tasks read their tmp_path (mode 0700)
            args += ["--run-as", "root"]
        if self.curve and "--key" not in extra:
            args += ["--key", self._keygen(wid, "workers"),
                     "--master-key", os.path.join(self.keys, "master.key")]
        # steps find trainyard-train and trainyard as commands
        env = dict(os.environ, PATH=os.path.join(BUILD, "trainer") + ":" + os.path.join(BUILD, "cli") +
                   ":" + os.environ["PATH"])
        p = Proc(wid, args, os.path.join(self.tmp, f"worker-{wid}.log"), env=env)
        self.procs.append(p)
        self.workers[wid] = p
        return p

    def wait_workers(self, ids, timeout=15):
        def up():
            ws = self.json("workers")
            have = {w["id"] for w in ws if w["state"] == "up"}
            return set(ids) <= have
        wait_until(up, timeout, f"workers {ids} to register")

    def stop(self):
        for p in reversed(self.procs):
            try:
                p.kill(signal.SIGTERM if p.name != "etcd" else signal.SIGKILL)
            except Exception:
                pass

    # ---- CLI ----
    def cli(self, *args, check=True, timeout=60):
        env = dict(os.environ, TRAINYARD_MASTER=self.client_ep or "")
        if self.curve:  # this cluster's keys (another cluster may have started since)
            env.update(TRAINYARD_KEY=os.path.join(self.keys, "clients", "tester.key_secret"),
                       TRAINYARD_MASTER_KEY=os.path.join(self.keys, "master.key"))
        r = subprocess.run([CLI_BIN] + list(args), capture_output=True, text=True, env=env,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"trainyard {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stderr}{r.stdout}")
        return r

    def json(self, *args, **kw):
        return json.loads(self.cli(*(list(args) + ["-o", "json"]), **kw).stdout)

    def submit(self, yaml_text, *params, name="p.yaml"):
        path = self.write(name, yaml_text)
        args = ["submit", path]
        for p in params:
            args += ["-p", p]
        return self.json(*args)["run_id"]

    def wait_run(self, run, timeout=60):
        """Follow a run to its end through the master's long-poll."""
        try:
            r = self.cli("status", run, "--wait", "-o", "json", check=False, timeout=timeout)
        except subprocess.TimeoutExpired:
            st = self.json("status", run)
            logs = {t["name"]: self.cli("logs", run, t["name"], check=False).stdout[-3000:]
                    for t in st["tasks"] if t["state"] not in ("pending", "queued")}
            raise AssertionError(f"run {run} not ended after {timeout}s: {st}\nlogs: {logs}")
        return json.loads(r.stdout)

    def wait_task_state(self, run, task, states, timeout=30):
        """Long-poll the run until task reaches one of states."""
        deadline = time.monotonic() + timeout
        version = 0
        while time.monotonic() < deadline:
            st = self.json("status", run, "--wait-after", str(version))
            version = st["version"]
            for t in st["tasks"]:
                if t["name"] == task and t["state"] in states:
                    return st
            if st["state"] not in ("pending", "running"):
                break
        raise AssertionError(f"{task} never reached {states}: {st}")

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # ---- etcd ----
    def etcd_revision(self):
        body = json.dumps({"key": base64.b64encode(b"\0").decode(),
                           "range_end": base64.b64encode(b"\0").decode(),
                           "count_only": True}).encode()
        req = urllib.request.Request(self.etcd_url + "/v3/kv/range", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            j = json.load(r)
        return int(j["header"]["revision"]), int(j.get("count", 0))


def z85_of(path, field):
    """A CURVE key (Z85 text, as bytes) from a czmq certificate file."""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(field + " = "):
                return line.split('"')[1].encode()
    raise KeyError(f"{field} in {path}")


def task(st, name):
    for t in st["tasks"]:
        if t["name"] == name:
            return t
    raise KeyError(name)


@contextlib.contextmanager
def running_cluster(tmp_path):
    """A cluster under tmp_path with etcd started; at the end every process
    is stopped and the logs are checked for sanitizer reports (and the
    history, when one was watched)."""
    for b in (MASTER_BIN, WORKER_BIN, CLI_BIN):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is not built")
    if not os.access(ETCD_BIN, os.X_OK):
        pytest.skip("no etcd binary")
    c = Cluster(tmp_path)
    violations = []
    # a cluster with keys points the environment's CLI at them: put it back
    saved = {k: os.environ.get(k) for k in ("TRAINYARD_KEY", "TRAINYARD_MASTER_KEY")}
    try:
        c.start_etcd()
        yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        c.stop()
        if c.history:  # etcd went last: the watch saw every commit
            c.history.stop()
            violations = c.history.check(c.runs_may_continue)
        # daemons built with ASan/UBSan report at exit (SIGTERM ends them cleanly)
        bad = [p.name for p in c.procs if p.name != "etcd" and SANITIZER_RE.search(p.text())]
        # task processes that outlived a killed worker (kill -9 tests)
        for pid in pids_matching(str(tmp_path)):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        if os.environ.get("TY_KEEP_LOGS"):
            print(f"logs in {tmp_path}")
    if bad:  # the report itself, for a CI log that keeps no files
        for p in c.procs:
            text = p.text()
            m = SANITIZER_RE.search(text) if p.name in bad else None
            if m:
                print(f"--- {p.name}'s sanitizer report:\n" +
                      "\n".join(text[m.start():].splitlines()[:40]))
    assert not bad, f"sanitizer reports in the logs of {bad} (under {tmp_path})"
    assert not violations, f"history (under {tmp_path}): " + "; ".join(violations[:5])


@pytest.fixture
def cluster(tmp_path):
    with running_cluster(tmp_path) as c:
        yield c
