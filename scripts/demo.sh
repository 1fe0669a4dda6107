#!/usr/bin/env bash
# The first of the README's two commands: installs dependencies, builds,
# starts a local cluster (etcd, master, two workers on 127.0.0.1), runs the
# example pipeline end to end with live progress, prints its task table and
# leaves the cluster running.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "== building (release)"
cmake --preset release >/dev/null
cmake --build --preset release

echo "== starting a local cluster"
env_line=$(scripts/cluster.sh start --workers 2)
eval "$env_line"
CLI=build/release/cli/trainyard

echo "== submitting examples/pipelines/hello.yaml"
set +e
"$CLI" submit examples/pipelines/hello.yaml -p who=demo --wait
rc=$?
set -e
run=$("$CLI" runs -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["run_id"])')
echo
echo "== logs of $run/count"
"$CLI" logs "$run" count
echo
echo "The cluster is still running. Try:"
echo "  $env_line"
echo "  $CLI runs"
echo "  $CLI status $run -o json"
echo "Stop it with: scripts/cluster.sh stop"
exit $rc
