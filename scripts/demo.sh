#!/usr/bin/env bash
# The first of the README's two commands: installs dependencies, builds,
# starts a local cluster (etcd, two masters, two workers on 127.0.0.1), trains
# an MLP on Fashion-MNIST with two MPI ranks through it (live progress: one
# redrawn line on a terminal), follows an MPI gang across both workers, lists
# the pipelines run (also through the HTTP API, where a run is submitted and
# its log followed as server-sent events),
# prints the run's tasks and metrics, lists the model it stored in the
# master's artifact store and fetches it back, runs the retraining loop three
# times (drift check, retrain, registry, promotion gate), kills the leading master with kill -9
# and runs a pipeline through the standby that takes over, shows the master's
# control core surviving faults in the deterministic simulator, and leaves
# the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== building (release)"
cmake --preset release >/dev/null
cmake --build --preset release

echo "== starting a local cluster"
env_line=$(scripts/cluster.sh start --workers 2 --masters 2)
eval "$env_line"
CLI=build/release/cli/trainyard

echo "== submitting examples/pipelines/fashion.yaml (MLP 784-128-64-10, 2 MPI ranks)"
set +e
"$CLI" submit examples/pipelines/fashion.yaml --wait
rc=$?
set -e
run=$("$CLI" runs -q --limit 1)
short=${run##*-}; short=${short:0:4}
echo
echo "== the last 5 lines of $run/train's log (a run id's short prefix will do: logs $short train --tail 5)"
"$CLI" logs "$short" train --tail 5 || true
echo
echo "== the trained model, stored by the master by its SHA-256, and fetched back"
"$CLI" artifacts "$run"
model="${TRAINYARD_HOME:-$PWD/.trainyard}/fashion.model"
"$CLI" get "$run" train/fashion.model -o "$model"
echo
echo "== an MPI gang across both workers: examples/pipelines/gang.yaml (4 ranks, 2 on each)"
gang=$("$CLI" submit examples/pipelines/gang.yaml)
"$CLI" status "$gang" --wait >/dev/null || true
"$CLI" status "$gang"
"$CLI" logs "$gang" train | grep -E "trained .* on 4 rank" || true

echo
echo "== the pipelines this cluster has run, and their last runs"
"$CLI" pipelines

echo
echo "== the same through the master's HTTP API (docs/api.md): $TRAINYARD_HTTP/api/v1/"
curl -s "$TRAINYARD_HTTP/api/v1/pipelines" | /usr/bin/python3 -c 'import json,sys
for p in json.load(sys.stdin):
    print("  %s: %d run(s), the last %s" % (p["name"], p["runs"], p["last_run"]["state"]))'
echo "-- submitting hello.yaml over HTTP (with the local user's token) and following its log as server-sent events"
hello=$(/usr/bin/python3 -c 'import json,sys; print(json.dumps({"yaml": open(sys.argv[1]).read(), "filename": "hello.yaml", "params": {"who": "http"}}))' examples/pipelines/hello.yaml |
  curl -s -X POST -H "Authorization: Bearer $(cat "$TRAINYARD_HTTP_TOKEN")" --data-binary @- "$TRAINYARD_HTTP/api/v1/runs" |
  /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])')
curl -sN --max-time 60 "$TRAINYARD_HTTP/api/v1/runs/$hello/tasks/count/logs?follow=1" | sed 's/^/   /' || true
echo "-- the web UI: open $TRAINYARD_HTTP/ in a browser (docs/ui.md)"
echo "-- a few of the figures Prometheus scrapes from $TRAINYARD_HTTP/metrics (docs/metrics.md)"
curl -s "$TRAINYARD_HTTP/metrics" | grep -E '^trainyard_(tasks_ended_total|workers|queue_depth|task_run_seconds_count)' | sed 's/^/   /' || true

echo
echo "== closing the loop: examples/pipelines/retrain.yaml three times (docs/retraining.md)"
echo "   (submitting a file with schedule: adds that schedule; --run-now also runs it now)"
model="demo-$(date +%s)"
for shift in 0 1.5 1.5; do
  [ "$shift" = 1.5 ] && echo "-- this period's data has drifted (-p shift=$shift)"
  "$CLI" submit examples/pipelines/retrain.yaml -p shift="$shift" -p model="$model" \
    --run-now --wait >/dev/null 2>&1 || true
  "$CLI" runs --limit 1 -o json | /usr/bin/python3 -c 'import json,sys
s = json.load(sys.stdin)[0]
print("%s %s" % (s["run_id"], s["state"]))'
  r=$("$CLI" runs --limit 1 -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
  "$CLI" status "$r" -o json | /usr/bin/python3 -c 'import json,sys
s = json.load(sys.stdin)
print("   " + ", ".join("%s %s" % (t["name"], t["state"]) for t in s["tasks"]))'
done
"$CLI" models history "$model"
"$CLI" schedules rm retrain >/dev/null
echo
echo "== secure by default (docs/security.md): keys, owners, unprivileged steps, etcd over TLS"
home="${TRAINYARD_HOME:-$PWD/.trainyard}"
"$CLI" runs --limit 3
"$CLI" keys list --dir "$home/keys/clients"
if TRAINYARD_KEY= TRAINYARD_MASTER_KEY= "$CLI" --connect-timeout 1 info >/dev/null 2>&1; then
  echo "(unexpected: a CLI without a key was answered)"
else
  echo "a CLI without a key: no answer (refused at the handshake, counted in info: auth_refused $("$CLI" info -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_refused"])'))"
fi
grep -h "tasks run as\|etcd over TLS" "$home/logs/worker-1.log" "$home/logs/master.log" 2>/dev/null | sed 's/^[^ ]* /  /' | head -2
echo
echo "== failover: kill -9 of the leading master; the standby takes over"
pids="${TRAINYARD_HOME:-$PWD/.trainyard}/pids"
info() { "$CLI" info -o json | /usr/bin/python3 -c 'import json,sys; i=json.load(sys.stdin); print("%s (pid %d), leader: %s" % (i["node_id"], i["pid"], i["leader"]))'; }
if [ -f "$pids/master-2.pid" ]; then
  echo "leader now: $(info)"
  kill -9 "$(cat "$pids/master.pid")"
  start=$SECONDS
  "$CLI" --timeout 30 submit examples/pipelines/hello.yaml -p who=failover --wait >/dev/null
  echo "a run went through the new leader $((SECONDS - start)) s after the kill: $(info)"
else
  echo "(skipped: this cluster was started with one master)"
fi
echo
echo "== the master's control core under faults (trainyard-sim: crashes, lost workers, failing etcd)"
build/release/master/trainyard-sim --seeds 20 --quiet | tail -n 1
echo
echo "The cluster is still running. Try:"
echo "  $env_line"
echo "  $CLI runs"
echo "  $CLI status $run -o json"
echo "Stop it with: scripts/cluster.sh stop"
exit $rc
