#!/usr/bin/env bash
# Runs the libFuzzer harnesses (fuzz/, docs/fuzzing.md) under ASan+UBSan.
#
#   scripts/fuzz.sh [--seconds S | --runs N] [HARNESS...]
#
# Builds the fuzz preset (clang), writes the seed inputs, then runs each
# harness (default: all) for S seconds (default 10) or N inputs, on its
# corpus in build/fuzz/corpus/HARNESS (kept between runs, so long runs
# build on short ones).  Prints how many inputs each ran; a crash, a
# sanitizer report or a leak fails it, with the input left in
# build/fuzz/crashes/ (replay: build/fuzz/fuzz/fuzz_HARNESS FILE).
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=10)
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (use --seconds S, --runs N)" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
all=(envelope worker_msg client_msg pipeline report config cron template http)
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")
for n in "${names[@]}"; do
  [[ " ${all[*]} " == *" $n "* ]] || { echo "fuzz.sh: no harness '$n' (${all[*]})" >&2; exit 2; }
done
command -v clang >/dev/null || { echo "fuzz.sh: clang is not installed (scripts/install-deps.sh)" >&2; exit 1; }

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz >/dev/null
out=build/fuzz
mkdir -p "$out/corpus" "$out/crashes"
"$out/fuzz/fuzz_seeds" "$out/seeds" >/dev/null
mkdir -p "$out/seeds/pipeline"
cp examples/pipelines/*.yaml "$out/seeds/pipeline/"

status=0
printf '%-12s %12s %8s %10s  %s\n' HARNESS INPUTS SECONDS PER_SEC RESULT
for n in "${names[@]}"; do
  mkdir -p "$out/corpus/$n"
  log="$out/fuzz-$n.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    "$out/fuzz/fuzz_$n" "${limit[@]}" -print_final_stats=1 -artifact_prefix="$out/crashes/$n-" \
    -rss_limit_mb=2048 -timeout=20 "$out/corpus/$n" "$out/seeds/$n" >"$log" 2>&1
  rc=$?
  set -e
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ $rc -eq 0 ]; then result=clean; else result="FAILED (rc $rc, see $log)"; status=1; fi
  printf '%-12s %12s %8s %10s  %s\n' "$n" "${runs:-?}" "${secs:-?}" "${rate:-?}" "$result"
done
exit $status
