"""A history checker for the fault tests (issue 16): every version of every
run and task record the cluster commits is recorded from an etcd watch
(etcdctl watch, from the start of the test), and checked afterwards:

- a task's result is committed once: after a terminal state its record
  never changes (no second result, no attempt recorded after it);
- a task's attempt number never goes down, and one attempt is never
  recorded as running again after it ended;
- every run ended (its last record is succeeded, failed or cancelled),
  unless the test says it leaves runs going.
"""
import base64
import json
import signal
import subprocess

RUN_TERMINAL = {2, 3, 4}        # succeeded failed cancelled (ty_run_state_t)
TASK_TERMINAL = {3, 4, 5, 6, 7}  # succeeded .. cancelled (ty_task_state_t)
RUNNING = 2


def _varint(b, i):
    n = shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def fields(b):
    """Top-level protobuf fields: {number: last value} (varints as ints,
    length-delimited as bytes)."""
    out, i = {}, 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            out[num], i = _varint(b, i)
        elif wt == 1:
            out[num], i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            out[num], i = b[i:i + n], i + n
        elif wt == 5:
            out[num], i = b[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
    return out


class History:
    def __init__(self, etcdctl, etcd_url, prefix, path):
        self.path = path
        self.prefix = prefix
        self.out = open(path, "wb")
        self.p = subprocess.Popen([etcdctl, "--endpoints", etcd_url, "watch", "--prefix",
                                   prefix + "runs/", "-w", "json"],
                                  stdout=self.out, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.pid = self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=10)
        self.out.close()

    def events(self):
        """(revision, key, value or None for a delete) in commit order."""
        evs = []
        with open(self.path, "rb") as f:
            for line in f:
                line = line.strip()
                if not line.startswith(b"{"):
                    continue
                for e in json.loads(line).get("Events") or []:
                    kv = e["kv"]
                    key = base64.b64decode(kv["key"]).decode()
                    val = base64.b64decode(kv.get("value", "")) if e.get("type") != 1 else None
                    evs.append((int(kv.get("mod_revision", 0)), key, val))
        evs.sort(key=lambda x: x[0])
        return evs

    def check(self, runs_may_continue=False):
        """A list of violations (empty when the history is sound)."""
        bad, tasks, runs = [], {}, {}
        for rev, key, val in self.events():
            rest = key[len(self.prefix) + len("runs/"):]
            if rest.startswith("done/") or val is None:
                continue  # the index of ended runs; deletes of old runs
            if "/tasks/" in rest:
                f = fields(val)
                state, attempt = f.get(2, 0), f.get(3, 0)
                prev = tasks.get(rest)
                if prev:
                    ps, pa, prev_rev = prev
                    if ps in TASK_TERMINAL and (state, attempt) != (ps, pa):
                        bad.append(f"{rest}: state {state} attempt {attempt} at revision {rev} "
                                   f"after its result ({ps}, attempt {pa}) at {prev_rev}")
                    if attempt < pa:
                        bad.append(f"{rest}: attempt {attempt} after attempt {pa} at {rev}")
                tasks[rest] = (state, attempt, rev)
            elif "/" not in rest:
                runs[rest] = fields(val).get(4, 0)
        if not runs_may_continue:
            for run, state in runs.items():
                if state not in RUN_TERMINAL:
                    bad.append(f"run {run} did not end (state {state})")
        self.seen = (len(runs), len(tasks))
        return bad
