"""ansible/ (issue 20, point 5): ansible-lint finds nothing; the playbook,
applied to this machine as three hosts (connection local, each its own
loopback address, ports and directories), makes etcd, a master and two
workers; applied again it changes nothing; the units it renders pass
systemd-analyze verify; each daemon started exactly as its unit's
ExecStart, Environment and User say runs a pipeline across both workers."""
import glob
import json
import os
import re
import shlex
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request

import pytest

from conftest import BUILD, CLI_BIN, ROOT, Proc, free_port, task, wait_until

PLAYBOOK = shutil.which("ansible-playbook")
LINT = shutil.which("ansible-lint")
ANSIBLE_DIR = os.path.join(ROOT, "ansible")


def test_ansible_lint_finds_nothing():
    if not LINT:
        pytest.skip("no ansible-lint (scripts/install-deps.sh installs it)")
    r = subprocess.run([LINT, "--offline", "site.yml", "upgrade.yml", "roles", "inventory"],
                       cwd=ANSIBLE_DIR,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, NO_COLOR="1"))
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "production profile" in out  # the strictest, with 0 failures and warnings
    assert int(re.search(r"on (\d+) files", out).group(1)) >= 20, out


def unit(path):
    """ExecStart (as argv), Environment and User of a rendered unit."""
    start, env, user = None, {}, "root"
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("ExecStart="):
                start = shlex.split(line[len("ExecStart="):])
            elif line.startswith("Environment="):
                k, v = line[len("Environment="):].split("=", 1)
                env[k] = v
            elif line.startswith("User="):
                user = line[len("User="):]
    return start, env, user


def recap(out):
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", out, re.M)}


def test_the_playbook_makes_a_cluster_of_three_hosts(tmp_path):
    if not PLAYBOOK:
        pytest.skip("no ansible-playbook (scripts/install-deps.sh installs it)")
    if os.geteuid() != 0:
        pytest.skip("applying the roles needs root (users, owners)")
    top = tempfile.mkdtemp(prefix="ty-ansible-")  # the daemons' user must get through
    os.chmod(top, 0o755)
    procs = []
    try:
        hosts = {"node1": "127.0.1.1", "node2": "127.0.1.2", "node3": "127.0.1.3"}
        # the master's HTTPS certificate, on the control host
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.1.1", "-addext", "subjectAltName=IP:127.0.1.1",
                        "-keyout", f"{top}/http-key.pem", "-out", f"{top}/http.pem"],
                       check=True, capture_output=True, timeout=60)
        inv = {"all": {
            "vars": {"ansible_connection": "local",
                     "ansible_python_interpreter": "/usr/bin/python3",
                     "trainyard_prefix": top + "/{{ inventory_hostname }}",
                     "trainyard_bin_src": BUILD, "trainyard_pki_dir": top + "/pki",
                     "trainyard_install_packages": False, "trainyard_manage_services": False,
                     "trainyard_users": ["alice"], "trainyard_admins": ["ops"],
                     "trainyard_http_cert_src": f"{top}/http.pem",
                     "trainyard_http_key_src": f"{top}/http-key.pem"},
            "hosts": {h: {"ansible_host": a, "trainyard_etcd_client_port": free_port(),
                          "trainyard_etcd_peer_port": free_port(),
                          "trainyard_client_port": free_port(),
                          "trainyard_worker_port": free_port(), "trainyard_worker_cpus": 2,
                          "trainyard_http_bind": f"{a}:{free_port()}",
                          "trainyard_worker_mpi_if": "lo"}
                      for h, a in hosts.items()},
            "children": {"trainyard_etcd": {"hosts": {"node1": None}},
                         "trainyard_masters": {"hosts": {"node1": None}},
                         "trainyard_workers": {"hosts": {"node2": None, "node3": None}}}}}
        path = os.path.join(top, "inventory.json")
        with open(path, "w") as f:
            json.dump(inv, f)

        def apply(playbook="site.yml"):
            r = subprocess.run([PLAYBOOK, "-i", path, playbook], cwd=ANSIBLE_DIR,
                               capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
            assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
            return recap(r.stdout)
        first = apply()
        assert set(first) >= set(hosts) and first["node1"] > 0
        assert apply() == {h: 0 for h in list(hosts) + ["localhost"]}  # idempotent

        units = sorted(glob.glob(f"{top}/node*/etc/systemd/system/trainyard-*.service"))
        assert [os.path.relpath(u, top) for u in units] == [
            "node1/etc/systemd/system/trainyard-etcd.service",
            "node1/etc/systemd/system/trainyard-master.service",
            "node2/etc/systemd/system/trainyard-worker.service",
            "node3/etc/systemd/system/trainyard-worker.service"]
        if shutil.which("systemd-analyze"):
            r = subprocess.run(["systemd-analyze", "verify", "--man=no"] + units,
                               capture_output=True, text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr

        def start(name, u):
            argv, env, user = unit(u)
            if user != "root":  # as the unit's User= (and its group, no others)
                argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] + argv
            p = Proc(name, argv, os.path.join(str(tmp_path), name + ".log"),
                     env=dict(os.environ, **env))
            procs.append(p)
            return p
        tls = f"{top}/pki/tls"
        ctx = ssl.create_default_context(cafile=f"{tls}/ca.pem")
        ctx.load_cert_chain(f"{tls}/master.pem", f"{tls}/master-key.pem")
        start("etcd", units[0])
        etcd_url = f"https://127.0.1.1:{inv['all']['hosts']['node1']['trainyard_etcd_client_port']}"

        def healthy():
            try:
                with urllib.request.urlopen(etcd_url + "/health", timeout=1, context=ctx) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_until(healthy, 30, "etcd from its unit")
        master = start("master", units[1])
        cep = f"tcp://127.0.1.1:{inv['all']['hosts']['node1']['trainyard_client_port']}"
        env = dict(os.environ, TRAINYARD_MASTER=cep,
                   TRAINYARD_KEY=f"{top}/pki/keys/users/alice.key_secret",
                   TRAINYARD_MASTER_KEY=f"{top}/pki/keys/master.key")

        def cli(*args):
            return subprocess.run([CLI_BIN, "--timeout", "10"] + list(args), capture_output=True,
                                  text=True, env=env, timeout=120)
        wait_until(lambda: cli("info").returncode == 0, 30, "the master from its unit")
        assert "etcd over TLS" in master.text()
        start("worker-node2", units[2])
        start("worker-node3", units[3])
        wait_until(lambda: sorted(w["id"] for w in json.loads(cli("workers", "-o", "json").stdout)
                                  if w["state"] == "up") == ["node2", "node3"], 30, "both workers")
        spec = os.path.join(top, "p.yaml")
        with open(spec, "w") as f:
            f.write("name: spread\ntasks:\n" + "".join(
                f"  - {{name: t{i}, resources: {{cpus: 2}}, command: 'id -un; sleep 0.5'}}\n"
                for i in range(2)))
        run = json.loads(cli("submit", spec, "-o", "json").stdout)["run_id"]
        st = json.loads(cli("status", run, "--wait", "-o", "json").stdout)
        assert st["state"] == "succeeded", st
        assert st["owner"] == "alice"
        assert sorted(task(st, f"t{i}")["worker"] for i in range(2)) == ["node2", "node3"]
        assert cli("logs", run, "t0").stdout == "trainyard\n"  # the unprivileged user
        # an MPI gang across both workers, each part as the unprivileged user
        with open(spec, "w") as f:
            f.write("name: gang\ntasks:\n  - {name: g, kind: mpi, np: 4, ranks_per_worker: 2, "
                    "command: 'echo rank $RANK on $TRAINYARD_WORKER as $(id -un)'}\n")
        run = json.loads(cli("submit", spec, "-o", "json").stdout)["run_id"]
        st = json.loads(cli("status", run, "--wait", "-o", "json").stdout)
        log = cli("logs", run, "g").stdout
        assert st["state"] == "succeeded", (st, log)
        ranks = dict(re.findall(r"rank (\d) on (node\d) as trainyard", log))
        # two on each: 0 and 1 on part 0's worker (either), 2 and 3 on the other
        assert sorted(ranks) == ["0", "1", "2", "3"], log
        assert ranks["0"] == ranks["1"] != ranks["2"] == ranks["3"], log
        assert {ranks["0"], ranks["2"]} == {"node2", "node3"}, log

        # the HTTP API as the config file says (HTTPS with the certificate the
        # role copied): reads on loopback, a user's token (made by the pki role)
        # to cancel
        http = "https://" + inv["all"]["hosts"]["node1"]["trainyard_http_bind"]
        https = ssl.create_default_context(cafile=f"{top}/http.pem")
        with urllib.request.urlopen(f"{http}/api/v1/runs/{run}", timeout=10,
                                    context=https) as r:
            assert json.loads(r.read())["state"] == "succeeded"
        with open(f"{top}/pki/http/alice.token") as f:
            token = f.read().strip()
        req = urllib.request.Request(f"{http}/api/v1/runs/{run}/cancel", method="POST",
                                     headers={"Authorization": "Bearer " + token})
        try:  # (it ended: refused as such, not as unauthorised)
            urllib.request.urlopen(req, timeout=10, context=https)
            raise AssertionError("cancel of an ended run answered 200")
        except urllib.error.HTTPError as e:
            assert e.code == 409, (e.code, e.read())

        # the rolling upgrade: one worker at a time, drained, then let back in
        apply("upgrade.yml")
        moves = re.findall(r"worker (node\d) (drains|takes attempts again)", master.text())
        assert moves == [("node2", "drains"), ("node2", "takes attempts again"),
                         ("node3", "drains"), ("node3", "takes attempts again")], moves
        assert not any(w["draining"] for w in json.loads(cli("workers", "-o", "json").stdout))
    finally:
        for p in reversed(procs):
            p.kill(15)
        shutil.rmtree(top, ignore_errors=True)


def test_cmake_install_puts_binaries_units_and_docs_where_a_package_would(tmp_path):
    """cmake --install (DESTDIR) puts the four binaries in bin, the units in
    lib/systemd/system, the docs in share/doc/trainyard and the key script
    in share/trainyard; the installed binaries run; the units verify."""
    dest = tmp_path / "root"
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", "/usr"], capture_output=True,
                       text=True, timeout=300, env=dict(os.environ, DESTDIR=str(dest)))
    assert r.returncode == 0, r.stdout + r.stderr
    usr = dest / "usr"
    for b in ("trainyard", "trainyard-master", "trainyard-worker", "trainyard-train"):
        h = subprocess.run([str(usr / "bin" / b), "--help"], capture_output=True, text=True,
                           timeout=30)
        assert h.returncode == 0 and "usage" in (h.stdout + h.stderr).lower(), b
    assert (usr / "share/doc/trainyard/security.md").is_file()
    assert os.access(usr / "share/trainyard/etcd-tls.sh", os.X_OK)
    units = sorted(p.name for p in (usr / "lib/systemd/system").iterdir())
    assert units == ["trainyard-master.service", "trainyard-worker.service"]
    if shutil.which("systemd-analyze"):  # as installed, their commands where this tree has them
        check = tmp_path / "units"
        check.mkdir()
        for u in units:
            text = (usr / "lib/systemd/system" / u).read_text()
            (check / u).write_text(text.replace("/usr/bin/", f"{usr}/bin/"))
        r = subprocess.run(["systemd-analyze", "verify", "--man=no"] +
                           [str(check / u) for u in units], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
