#!/usr/bin/env bash
# A longer sweep of the deterministic simulator than CI's 200 seeds:
#   scripts/sim_sweep.sh [SEEDS] [FIRST_SEED] [trainyard-sim options...]
# Uses the release build (build/release/master/trainyard-sim) when present.
# A violation prints the command that replays it; the exit status is 1.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-5000}
first=${2:-1}
shift $(( $# > 2 ? 2 : $# ))
sim=build/release/master/trainyard-sim
[ -x "$sim" ] || sim=build/debug/master/trainyard-sim
if [ ! -x "$sim" ]; then
  echo "sim_sweep: build first (cmake --preset release && cmake --build --preset release)" >&2
  exit 2
fi
echo "sim_sweep: seeds $first..$((first + seeds - 1)) with $sim $*"
"$sim" --seed "$first" --seeds "$seeds" --quiet "$@"
