"""The master's HTTP API (/api/v1) against a real cluster: the same JSON as
the CLI's -o json (one handler answers both), runs' filters, a task's log
plain and followed as server-sent events, submit and cancel with tokens,
ownership, errors with their status, and the refusal to listen beyond
loopback without tokens."""
import json
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import MASTER_BIN, free_port, running_cluster, wait_until


@pytest.fixture(scope="module")
def c(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("http")) as c:
        c.start_master()
        c.start_worker("w1")
        c.wait_workers(["w1"])
        yield c


PIPELINE = """
name: web
params: {n: 3}
tasks:
  - name: count
    outputs: [out.txt]
    command:
      - sh
      - -c
      - |
        for i in $(seq 1 {{ params.n }}); do
          echo "line $i"; echo "metric loss 0.$i $i" >> "$TRAINYARD_REPORT"; sleep 0.3
        done
        printf 'no newline at the end' ; echo done > out.txt
  - name: after
    depends_on: [count]
    command: ["true"]
"""


def submit(c, yaml_text, token=True, **extra):
    return c.http("/api/v1/runs", body={"yaml": yaml_text, "filename": "web.yaml", **extra},
                  token=token, method="POST")


def wait_done(c, run):
    def done():
        st = c.http_json(f"/api/v1/runs/{run}")
        return st if st["state"] not in ("pending", "running") else None
    return wait_until(done, 60, f"run {run} to end")


def events(stream):
    """The server-sent events of a response, as (fields) dicts, to the end."""
    ev, out = {}, []
    for raw in stream:
        line = raw.decode().rstrip("\n")
        if line == "":
            if ev:
                out.append(ev)
            ev = {}
            continue
        if line.startswith(":"):
            out.append({"comment": line[1:].strip()})
            continue
        k, _, v = line.partition(": ")
        ev[k] = ev[k] + "\n" + v if k in ev else v
    return out


def test_the_api_agrees_with_the_cli_and_follows_a_log(c):
    status, _, body = submit(c, PIPELINE, params={"n": 4})
    assert status == 201, body
    sub = json.loads(body)
    run = sub["run_id"]
    assert sub["state"] == "pending" and sub["warnings"] == []
    # the log, followed while it is written: each line an event with the
    # offset after it, the unended last line at the end, then `end`
    req = urllib.request.Request(f"{c.http_url}/api/v1/runs/{run}/tasks/count/logs?follow=1")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        evs = [e for e in events(r) if "comment" not in e]
    data = [e["data"] for e in evs if "event" not in e]
    assert data == ["line 1", "line 2", "line 3", "line 4", "no newline at the end"], evs
    assert evs[0]["id"] == "1:7" and evs[-1] == {"event": "end", "data": '{"attempt":1}'}
    # a follower reconnecting with Last-Event-ID gets what came after
    req = urllib.request.Request(f"{c.http_url}/api/v1/runs/{run}/tasks/count/logs?follow=1",
                                 headers={"Last-Event-ID": evs[1]["id"]})
    with urllib.request.urlopen(req, timeout=60) as r:
        again = [e["data"] for e in events(r) if "event" not in e and "data" in e]
    assert again == ["line 3", "line 4", "no newline at the end"]
    st = wait_done(c, run)
    assert st["state"] == "succeeded" and st["owner"] == "tester"
    # plain: the whole log
    status, headers, body = c.http(f"/api/v1/runs/{run}/tasks/count/logs", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert body == c.cli("logs", run, "count").stdout.encode()
    status, _, body = c.http(f"/api/v1/runs/{run}/tasks/count/logs?tail=2", token=False)
    assert body.decode().splitlines() == ["line 4", "no newline at the end"]
    # the same JSON as -o json, read without a token on loopback
    assert c.http_json(f"/api/v1/runs/{run}", token=False) == c.json("status", run)
    deps = {t["name"]: t["depends_on"] for t in c.http_json(f"/api/v1/runs/{run}?spec=1")["tasks"]}
    assert deps == {"count": [], "after": ["count"]}
    assert c.http_json("/api/v1/runs", token=False) == c.json("runs")
    assert c.http_json(f"/api/v1/runs/{run}/metrics") == c.json("metrics", run)
    assert [p["value"] for p in c.http_json(f"/api/v1/runs/{run}/metrics?task=count")[0]
            ["points"]] == [0.1, 0.2, 0.3, 0.4]
    arts = c.http_json(f"/api/v1/runs/{run}/artifacts")
    assert arts == c.json("artifacts", run) and arts[0]["name"] == "out.txt"
    status, headers, body = c.http(f"/api/v1/runs/{run}/artifacts/count/out.txt")
    assert status == 200 and body == b"done\n"
    assert headers["Content-Disposition"] == 'attachment; filename="out.txt"'
    status, _, body = c.http(f"/api/v1/runs/{run}/artifacts/count/nothing.txt")
    assert status == 404 and "has no output count/nothing.txt" in json.loads(body)["error"]
    assert c.http_json("/api/v1/pipelines") == c.json("pipelines")
    strip = [{k: v for k, v in w.items() if k != "last_seen_at"} for w in c.json("workers")]
    assert [{k: v for k, v in w.items() if k != "last_seen_at"}
            for w in c.http_json("/api/v1/workers")] == strip
    assert c.http_json("/api/v1/info")["leader"] is True


def test_filters_submit_cancel_tokens_and_errors(c):
    slow = "name: slow\ntasks:\n  - {name: s, command: [sleep, '60']}\n"
    before = c.json("runs")
    # what changes something needs a token; a wrong one is refused too
    status, headers, body = submit(c, slow, token=False)
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer"
    assert "needs a token" in json.loads(body)["error"]
    req = urllib.request.Request(c.http_url + "/api/v1/runs", headers={"Authorization": "Bearer x"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 401 and "not one of this master's" in json.loads(e.value.read())["error"]
    # bad input: a one-line error with its status, nothing stored
    status, _, body = submit(c, "name: [")
    assert status == 400 and "\n" not in json.loads(body)["error"], body
    status, _, body = c.http("/api/v1/runs", body="not json", method="POST")
    assert status == 400
    assert c.json("runs") == before
    status, _, body = c.http("/api/v1/runs/nope-123")
    assert status == 404 and "nope-123" in json.loads(body)["error"]
    status, _, body = c.http("/api/v1/runs?state=sleeping")
    assert status == 400 and "no such run state 'sleeping'" in json.loads(body)["error"]
    status, _, body = c.http("/api/v1/runz")
    assert status == 404
    # submit, then cancel: the run is the tester's
    status, _, body = submit(c, slow, request_id="http-slow-1")
    assert status == 201
    run = json.loads(body)["run_id"]
    status, _, body = submit(c, slow, request_id="http-slow-1")  # sent again: the same run
    assert json.loads(body)["run_id"] == run
    # the worker lists what runs on it
    wait_until(lambda: {"run_id": run, "task": "s", "attempt": 1} in
               c.http_json("/api/v1/workers")[0]["attempts"], 20, "the slow task to run on w1")
    # another user's token (read again on SIGHUP) may not cancel it
    with open(os.path.join(c.tmp, "http-tokens"), "a") as f:
        f.write("bob " + "b" * 32 + "\n")
    c.master.p.send_signal(signal.SIGHUP)

    def bob_cancel():
        req = urllib.request.Request(f"{c.http_url}/api/v1/runs/{run}/cancel", method="POST",
                                     headers={"Authorization": "Bearer " + "b" * 32})
        try:
            urllib.request.urlopen(req, timeout=10)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())["error"]
        return 200, ""
    code, err = wait_until(lambda: (lambda r: r if r[0] != 401 else None)(bob_cancel()), 10,
                           "bob's token to be read")
    assert code == 403 and "tester" in err, err
    # a page of another site, through a browser that has the token, may not
    req = urllib.request.Request(f"{c.http_url}/api/v1/runs/{run}/cancel", method="POST",
                                 headers={"Authorization": "Bearer " + c.http_token,
                                          "Origin": "http://evil.example"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 403
    status, _, body = c.http(f"/api/v1/runs/{run}/cancel", method="POST", body={})
    assert status == 200 and json.loads(body) == {"run_id": run, "state": "cancelled"}
    assert c.json("status", run)["state"] == "cancelled"
    # the CLI's filters
    for q, args in (("state=cancelled", ["--state", "cancelled"]),
                    ("pipeline=web", ["--pipeline", "web"]),
                    ("limit=1", ["--limit", "1"]), ("since=1h", ["--since", "1h"])):
        assert c.http_json("/api/v1/runs?" + q) == c.json("runs", *args), q
    assert [r["run_id"] for r in c.http_json("/api/v1/runs?state=cancelled")] == [run]


def test_a_public_address_needs_tokens(c, tmp_path):
    base = [MASTER_BIN, "--etcd", "http://127.0.0.1:9", "--data-dir", str(tmp_path), "--insecure",
            "--client-bind", f"tcp://127.0.0.1:{free_port()}",
            "--worker-bind", f"tcp://127.0.0.1:{free_port()}"]
    r = subprocess.run(base + ["--http-bind", "0.0.0.0:0"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "--insecure binds loopback addresses only (127.0.0.0/8, ::1), not --http-bind " \
           "0.0.0.0:0" in r.stderr, r.stderr
    if c.curve:  # with keys: it may, given tokens
        keyed = [a for a in base if a != "--insecure"] + c._security_args([])
        r = subprocess.run(keyed + ["--http-bind", "0.0.0.0:0"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 1
        assert "--http-bind 0.0.0.0:0 is not a loopback address: give --http-tokens FILE " \
            "and --http-cert/--http-key" in r.stderr, r.stderr
    bad = tmp_path / "tokens"
    bad.write_text("alice short\n")
    r = subprocess.run(base + ["--http-bind", "127.0.0.1:0", "--http-tokens", str(bad)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "must have 16 to 256 characters" in r.stderr, r.stderr


def prom_query(base, q):
    url = base + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        res = json.loads(r.read())
    assert res["status"] == "success", res
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in res["data"]["result"]}


def test_prometheus_scrapes_the_master(c):
    """/metrics passes promtool; Debian's prometheus scrapes the master
    while a pipeline runs, and its query API reads the series back."""
    from conftest import Proc
    status, headers, body = c.http("/metrics", token=False)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert b"run_id" not in body  # no per-run labels
    port = free_port()
    cfg = os.path.join(c.tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n  - job_name: trainyard\n"
                f"    static_configs: [{{targets: ['{c.http_url[len('http://'):]}']}}]\n")
    prom = Proc("prometheus", ["prometheus", "--config.file", cfg, "--storage.tsdb.path",
                               os.path.join(c.tmp, "prom-data"), "--web.listen-address",
                               f"127.0.0.1:{port}"], os.path.join(c.tmp, "prometheus.log"))
    c.procs.append(prom)
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            with urllib.request.urlopen(base + "/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False
    wait_until(ready, 60, "prometheus to be ready")
    before = c.http_json("/api/v1/runs?pipeline=web")
    status, _, body = submit(c, PIPELINE, params={"n": 2})
    assert status == 201
    st = wait_done(c, json.loads(body)["run_id"])
    assert st["state"] == "succeeded"
    ended = sum(1 for r in before if r["state"] == "succeeded") + 1
    # the succeeded tasks as Prometheus has scraped them (it scrapes every second)
    want = {"succeeded": 2 * ended}

    def scraped():
        got = prom_query(base, 'trainyard_tasks_ended_total{job="trainyard",state="succeeded"}')
        return got and min(got.values()) >= want["succeeded"]
    wait_until(scraped, 30, "prometheus to have scraped the run's tasks", interval=0.5)
    up = prom_query(base, 'up{job="trainyard"}')
    assert list(up.values()) == [1.0]
    assert list(prom_query(base, "trainyard_leader").values()) == [1.0]
    workers = prom_query(base, 'trainyard_workers{state="up"}')
    assert list(workers.values()) == [1.0]
    cpus = prom_query(base, "trainyard_worker_cpus")
    assert [dict(k)["worker"] for k in cpus] == ["w1"] and list(cpus.values())[0] > 0
    # the histograms: every attempt ran, dispatch to run observed
    n = prom_query(base, "trainyard_task_run_seconds_count")
    assert list(n.values())[0] >= want["succeeded"]
    q = prom_query(base, "histogram_quantile(0.99, trainyard_task_run_seconds_bucket)")
    assert 0.25 < list(q.values())[0] <= 10, q  # the count task sleeps 0.3 s a line
    assert list(prom_query(base, "trainyard_etcd_txn_seconds_count").values())[0] > 0
    assert list(prom_query(base, "trainyard_queue_depth").values()) == [0.0]
    # the worker's own figures, through its heartbeats: a task that burns
    # CPU shows in its attempts' CPU time; the daemon's memory is there
    burn = "name: burn\ntasks:\n  - {name: b, command: \"timeout 3 sh -c 'while :; do :; done'; true\"}\n"
    status, _, body = submit(c, burn)
    assert status == 201

    def burnt():
        got = prom_query(base, 'max_over_time(trainyard_worker_attempts_cpu_seconds{worker="w1"}[1m])')
        return got and list(got.values())[0] >= 1.0
    wait_until(burnt, 30, "the burning task's CPU time to be scraped", interval=0.5)
    wait_done(c, json.loads(body)["run_id"])
    assert list(prom_query(base, "trainyard_worker_process_resident_bytes").values())[0] > 1e6
    assert list(prom_query(base, "trainyard_worker_attempts_resident_bytes").values())[0] >= 0
    prom.kill(signal.SIGTERM)


def test_schedules_and_models_as_the_cli_shows_them(c):
    path = c.write("yearly.yaml", "name: yearly\ntasks:\n  - {name: t, command: ['true']}\n")
    c.cli("schedules", "add", "yearly", path, "--cron", "0 3 1 1 *", "--tz", "Europe/Berlin")
    assert c.http_json("/api/v1/schedules") == c.json("schedules", "list")
    one = c.http_json("/api/v1/schedules/yearly")
    assert one == c.json("schedules", "show", "yearly") and one["cron"] == "0 3 1 1 *"
    assert len(one["next_fires"]) == 5
    status, _, body = c.http("/api/v1/schedules/nope")
    assert status == 404, body
    # a model registered from a run's output
    status, _, body = submit(c, PIPELINE, params={"n": 1})
    run = json.loads(body)["run_id"]
    assert wait_done(c, run)["state"] == "succeeded"
    c.cli("models", "register", "webm", "--from", f"{run}/count/out.txt")
    assert c.http_json("/api/v1/models") == c.json("models", "list")
    versions = c.http_json("/api/v1/models/webm")
    assert versions == c.json("models", "list", "webm") and versions[0]["run_id"] == run
    assert c.http_json("/api/v1/models/webm/history") == c.json("models", "history", "webm")


def test_https_with_a_certificate(c, tmp_path):
    """--http-cert/--http-key: the server speaks TLS (a standby master here:
    it answers /metrics with trainyard_leader 0); plain HTTP gets nothing."""
    import ssl
    cert, key = tmp_path / "http.pem", tmp_path / "http-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    port = free_port()
    saved = c.client_ep, c.worker_ep
    m2 = c.start_standby("m2", "--http-bind", f"127.0.0.1:{port}", "--http-cert", str(cert),
                         "--http-key", str(key))
    c.client_ep, c.worker_ep = saved
    ctx = ssl.create_default_context(cafile=str(cert))

    def answers():
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/metrics", timeout=2,
                                        context=ctx) as r:
                return r.read()
        except OSError:
            return None
    body = wait_until(answers, 20, "the standby's HTTPS server")
    assert b"trainyard_leader 0" in body
    with pytest.raises(Exception):  # plain HTTP: no answer that reads as one
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    assert f"https://127.0.0.1:{port}/" in m2.text()
    m2.kill(signal.SIGTERM)
    # a certificate without its key: refused at start
    r = subprocess.run([MASTER_BIN, "--etcd", "http://127.0.0.1:9", "--data-dir", str(tmp_path),
                        "--insecure", "--client-bind", f"tcp://127.0.0.1:{free_port()}",
                        "--worker-bind", f"tcp://127.0.0.1:{free_port()}",
                        "--http-bind", "127.0.0.1:0", "--http-cert", str(cert)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--http-cert and --http-key go together" in r.stderr, r.stderr
