"""The web UI in Debian's headless chromium (playwright-core from the npm
registry, integration-tests/ui/): the runs list, a run's graph whose nodes
change colour while it progresses, a task's log followed, its metrics as a
chart, an artifact's download, workers, pipelines, and the page of a
1,000-task run (its load time is printed; docs/benchmarks.md has the
figures). Screenshots go to $TY_UI_SHOTS (docs/ui.md shows them)."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import running_cluster

HERE = os.path.dirname(os.path.abspath(__file__))
UI = os.path.join(HERE, "ui")
CHROMIUM = os.environ.get("TY_CHROMIUM", "/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not (os.path.exists(CHROMIUM) and shutil.which("node") and
         os.path.isdir(os.path.join(UI, "node_modules", "playwright-core"))),
    reason="needs chromium, node and playwright-core (scripts/install-deps.sh)")

WATCHED = """
name: web
tasks:
  - name: prepare
    command: "for i in $(seq 600); do [ -e GATE ] && break; sleep 0.05; done"
  - name: count
    depends_on: [prepare]
    outputs: [out.txt]
    command:
      - sh
      - -c
      - |
        for i in 1 2 3 4 5 6; do
          echo "line $i"; echo "metric loss 0.$((7 - i)) $i" >> "$TRAINYARD_REPORT"; sleep 0.5
        done
        echo done > out.txt
        echo "register webm out.txt" >> "$TRAINYARD_REPORT"
  - name: shout
    depends_on: [prepare]
    command: [sleep, "1"]
  - name: report
    depends_on: [count, shout]
    command: ["true"]
"""


def big_pipeline(n=1000, width=50):
    lines = ["name: wide", "tasks:"]
    for i in range(n):
        dep = f", depends_on: [t{i - width}]" if i >= width else ""
        lines.append(f"  - {{name: t{i}, command: ['true']{dep}}}")
    return "\n".join(lines) + "\n"


def test_the_ui_follows_a_run_in_chromium(tmp_path_factory, tmp_path):
    shots = os.environ.get("TY_UI_SHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    with running_cluster(tmp_path_factory.mktemp("ui")) as c:
        c.start_master("--max-pipeline-tasks", "2000")
        c.start_worker("w1", "--cpus", "2")
        c.wait_workers(["w1"])
        status, _, body = c.http("/api/v1/runs", method="POST",
                                 body={"yaml": big_pipeline(), "filename": "wide.yaml"})
        assert status == 201, body
        big = json.loads(body)["run_id"]
        c.cli("cancel", big)  # its page is what is measured, not its run
        # the first task waits for the page to have drawn the graph (ui_check
        # makes the gate file), so the page sees every change after it
        gate = os.path.join(str(tmp_path), "gate")
        status, _, body = c.http("/api/v1/runs", method="POST",
                                 body={"yaml": WATCHED.replace("GATE", gate), "filename": "web.yaml"})
        assert status == 201, body
        run = json.loads(body)["run_id"]
        path = c.write("yearly.yaml", "name: yearly\ntasks:\n  - {name: t, command: ['true']}\n")
        c.cli("schedules", "add", "yearly", path, "--cron", "0 3 1 1 *")
        r = subprocess.run(["node", os.path.join(UI, "ui_check.js"), c.http_url, run, big, shots,
                            gate],
                           capture_output=True, text=True, timeout=240, cwd=UI)
        assert r.returncode == 0, r.stdout + r.stderr
        seen = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"ui: 1,000-task run page {seen['bigLoadMs']} ms to its graph "
          f"(drawn {seen['bigGraphMs']:.0f} ms after the page's script ran), "
          f"a click {seen['bigClickMs']} ms")
    assert seen["nodes"] == 4 and seen["first"] != seen["changed"], seen
    assert "line 1\nline 2\n" in seen["log"], seen["log"]
    assert seen["points"] >= 2
    assert seen["artifact"].endswith(f"/api/v1/runs/{run}/artifacts/count/out.txt")
    assert seen["artifactText"] == "done\n"
    assert seen["workers"] == 1 and "web" in seen["pipelines"] and "wide" in seen["pipelines"]
    assert seen["schedules"] == ["yearly"] and seen["modelRun"] == run
    assert seen["bigNodes"] == 1000
    assert seen["bigLoadMs"] < 10000  # no freeze (the target, 1 s, is measured: benchmarks.md)
    assert seen["errors"] == [], seen["errors"]
    for f in ("runs", "run", "log", "metrics", "workers", "pipelines", "models", "big"):
        assert os.path.getsize(os.path.join(shots, f + ".png")) > 1000
