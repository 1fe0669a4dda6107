#!/bin/bash
# A/B of two trainyard-train binaries on Fashion-MNIST (the benchmark's MLP,
# batch 256, SGD, 10 epochs): rounds of 1 and 2 ranks with each binary,
# alternating which goes first, for SECONDS (default 200); one JSON line a
# run (samples/s over the epochs, loss, the step's parts), then each
# binary's median samples/s and median 2-rank/1-rank ratio, paired within a
# round (a run that fails leaves its round unpaired). Lines also go to $OUT/ab.jsonl when OUT is set (a lent machine).
# Usage: ab_trainer.sh A_BIN B_BIN [SECONDS]
set -u
[ $# -ge 2 ] || { echo "usage: ab_trainer.sh A_BIN B_BIN [SECONDS]" >&2; exit 2; }
D=${TY_FASHION_DIR:-/usr/share/datasets/fashion-mnist}
PY=$(command -v python3)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
one() { # BINARY NP NAME ROUND
    rm -f "$tmp/rep"
    TRAINYARD_REPORT=$tmp/rep mpirun --oversubscribe --bind-to none -np "$2" "$1" fit \
        --train "idx:$D/train-images-idx3-ubyte.gz,$D/train-labels-idx1-ubyte.gz" \
        --model mlp:128,64 --epochs 10 --batch 256 --lr 0.05 --momentum 0.9 \
        --out "$tmp/m.model" -o json 2>/dev/null | tail -1 >"$tmp/j"
    "$PY" - "$tmp" "$2" "$3" "$4" <<'PY'
import json, sys
tmp, np, name, rnd = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
d = json.load(open(tmp + "/j"))
t = sum(float(l.split()[2]) for l in open(tmp + "/rep") if l.startswith("metric epoch_time_s"))
print(json.dumps({"bin": name, "round": rnd, "np": np, "samples_per_s": 234 * 256 * 10 / t, "loss": d["loss"],
                  "step_us": {k: round(v["median"], 1) for k, v in d["step_us"].items()}}))
PY
}
end=$((SECONDS + ${3:-200}))
r=0
while [ $SECONDS -lt $end ]; do
    r=$((r + 1))
    if [ $((r % 2)) = 1 ]; then order="A B"; else order="B A"; fi
    for v in $order; do
        bin=$1
        [ "$v" = B ] && bin=$2
        one "$bin" 1 "$v" $r && one "$bin" 2 "$v" $r
    done
done | tee "$tmp/ab.jsonl"
[ -n "${OUT:-}" ] && cp "$tmp/ab.jsonl" "$OUT/ab.jsonl"
"$PY" - "$tmp/ab.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for b in ("A", "B"):
    one = {r["round"]: r for r in rows if r["bin"] == b and r["np"] == 1}
    two = {r["round"]: r for r in rows if r["bin"] == b and r["np"] == 2}
    ratios = [two[k]["samples_per_s"] / one[k]["samples_per_s"] for k in one if k in two]
    print(json.dumps({"bin": b, "rounds": len(ratios),
                      "samples_per_s_1": statistics.median(r["samples_per_s"] for r in one.values()),
                      "samples_per_s_2": statistics.median(r["samples_per_s"] for r in two.values()),
                      "ratio_2_vs_1": statistics.median(ratios),
                      "ratio_range": [min(ratios), max(ratios)]}))
PY
