#!/bin/bash
# Packs what a lent GPU machine needs to check the CUDA backend into
# gpu-bundle/ (git-ignored; pass it in the device tool's `carry`): the
# release trainyard-train, CUDA unit test and bench_step_cost built here (nvcc 13), the two
# Debian libraries they use that the GPU machine lacks, and Fashion-MNIST;
# and, gzipped in cluster.tgz, a cluster for the GPU pipeline test (master,
# worker, CLI, Debian's etcd and the Debian libraries they load: there,
# gpu_device.sh uses only those the machine lacks).
# The GPU machine brings CUDA, cuBLAS, Open MPI, OpenBLAS and PyTorch.
# Then, there: scripts/bench/gpu_device.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake --preset release >/dev/null
cmake --build --preset release --target trainyard-train trainer_gpu_test bench_step_cost \
    trainyard-master trainyard-worker trainyard
grep -q 'TY_CUDA:BOOL=ON' build/release/CMakeCache.txt || {
    echo "gpu_bundle: this build has no CUDA backend (nvcc not found)" >&2
    exit 1
}
rm -rf gpu-bundle
mkdir -p gpu-bundle/trainer gpu-bundle/lib gpu-bundle/fashion
cp build/release/trainer/trainyard-train build/release/trainer/trainer_gpu_test \
    build/release/trainer/bench_step_cost gpu-bundle/trainer/
for lib in libjansson.so.4 libprotobuf-c.so.1; do
    cp -L "/usr/lib/x86_64-linux-gnu/$lib" gpu-bundle/lib/
done
cp /usr/share/datasets/fashion-mnist/*-ubyte.gz gpu-bundle/fashion/
c=$(mktemp -d)
mkdir -p "$c/master" "$c/worker" "$c/cli" "$c/lib-all"
cp build/release/master/trainyard-master "$c/master/"
cp build/release/worker/trainyard-worker "$c/worker/"
cp build/release/cli/trainyard "$c/cli/"
cp /usr/bin/etcd "$c/"
# every library they load but the C runtime, CUDA, Open MPI and OpenBLAS,
# which the GPU machine has in versions of its own
ldd "$c"/*/trainyard* build/release/trainer/trainyard-train | awk '$3 ~ /^\// {print $3}' |
    sort -u | grep -Ev '/(libc|libm|libdl|libpthread|librt|libresolv|libgcc_s|libstdc\+\+)\.so|/libcu(dart|blas)|/lib(mpi|open-pal|open-rte|hwloc|event|openblas|gfortran|quadmath)' |
    xargs -I{} cp -L {} "$c/lib-all/"
tar -C "$c" -czf gpu-bundle/cluster.tgz .
rm -rf "$c"
du -sh gpu-bundle
