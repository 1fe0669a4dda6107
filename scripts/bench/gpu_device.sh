#!/bin/bash
# Runs on a lent GPU machine, from the repository root, with gpu-bundle/
# carried (scripts/bench/gpu_bundle.sh makes it): the CUDA unit test (GPU
# against CPU gradients and steps), the GPU benchmark, the GPU integration
# tests when pytest is there (a cluster among them: cluster.tgz), and the
# unit test under compute-sanitizer; `tests`: the unit and integration
# tests alone; `cpu`: the CPU benchmark instead; `all`: both, in one call
# of at most 9 minutes (one start of a lent machine). Everything it prints
# also lands in $OUT.
set -u
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
B=$PWD/gpu-bundle
export LD_LIBRARY_PATH=$B/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T0=$SECONDS
MODE=${1:-}
# the cluster for the pipeline test, with the carried libraries this
# machine lacks (it has its own C runtime, CUDA, Open MPI and OpenBLAS)
if [ -f "$B/cluster.tgz" ]; then
    tar -C "$B" -xzf "$B/cluster.tgz"
    for f in "$B"/lib-all/*; do
        ldconfig -p | grep -qF "${f##*/} (" || ln -sf "$f" "$B/lib/${f##*/}"
    done
    export TY_ETCD_BIN=$B/etcd
fi
cpu_bench() {
    # The CPU benchmark (scripts/bench/bench_trainer.py) on this machine's
    # dedicated cores, against the PyTorch installed there (MKL, not OpenBLAS)
    nproc
    # the step's parts alone and as 2 copies at once: do these cores slow each other?
    for c in 1 2; do OPENBLAS_NUM_THREADS=1 "$B/trainer/bench_step_cost" --copies $c; done |
        tee "$OUT/step_cost.jsonl"
    # with cores to spare, 4 and 8 ranks too: where the split update should tell
    local more=""
    [ "$(nproc)" -ge 16 ] && more="--more-ranks 4,8"
    TY_BUILD_DIR=$B TY_FASHION_DIR=$B/fashion TY_TORCH_PYTHON=$(command -v python3) \
        PYTHONUNBUFFERED=1 timeout "${CPU_BENCH_S:-300}" python3 scripts/bench/bench_trainer.py \
        --repeat "${ROUNDS:-5}" $more ${BENCH_ARGS:-} --json "$OUT/bench_trainer.json" 2>&1 |
        tee "$OUT/cpu_device.log"
    return "${PIPESTATUS[0]}"
}
if [ "$MODE" = cpu ]; then
    cpu_bench
    exit $?
fi
{
    nvidia-smi -L
    command -v mpirun python3 compute-sanitizer nvcc
    mpirun --version | head -1
    ldd "$B/trainer/trainyard-train" | grep -E 'not found|cuda|cublas|mpi|blas' || true
    ls "$B/lib"
    for b in "$B"/master/* "$B"/worker/* "$B"/cli/*; do
        [ -x "$b" ] && ldd "$b" | grep 'not found'
    done
    echo "== trainer_gpu_test"
    timeout 120 "$B/trainer/trainer_gpu_test"
    echo "rc=$?"
    if [ "$MODE" != tests ]; then
        echo "== bench_gpu"
        PYTHONUNBUFFERED=1 timeout 240 python3 scripts/bench/bench_gpu.py \
            --train "$B/trainer/trainyard-train" --data "$B/fashion" --epochs "${EPOCHS:-10}" \
            --json "$OUT/bench_gpu.json"
        echo "rc=$?"
    fi
    if python3 -c 'import pytest' 2>/dev/null; then
        echo "== integration-tests/test_trainer_gpu.py"
        TY_BUILD_DIR=$B TY_FASHION_DIR=$B/fashion timeout 200 python3 -m pytest -q -rs \
            -p no:cacheprovider integration-tests/test_trainer_gpu.py
        echo "rc=$?"
    fi
    if [ "$MODE" != tests ] && command -v compute-sanitizer >/dev/null; then
        echo "== compute-sanitizer memcheck trainer_gpu_test"
        timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 \
            "$B/trainer/trainer_gpu_test" | tail -5
        echo "rc=${PIPESTATUS[0]}"
    fi
} 2>&1 | tee "$OUT/gpu_device.log"
if [ "$MODE" = all ]; then # then the CPU benchmark, in what is left of 9 minutes
    CPU_BENCH_S=$((540 - (SECONDS - T0)))
    [ "$CPU_BENCH_S" -lt 60 ] && CPU_BENCH_S=60
    export CPU_BENCH_S
    cpu_bench
fi
# `gpu_device.sh tests` runs only the tests, `gpu_device.sh cpu` the CPU
# benchmark instead, `gpu_device.sh all` both (the CPU benchmark cut short
# by the time left; its rounds are in the log).
# From the session's machine (the device tool), e.g.:
#   scripts/bench/gpu_bundle.sh
#   run: command "bash scripts/bench/gpu_device.sh", carry ["gpu-bundle"], timeout_s 450
#   or: command "BENCH_ARGS=--msg bash scripts/bench/gpu_device.sh all", timeout_s 590
