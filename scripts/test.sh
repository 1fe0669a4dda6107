#!/usr/bin/env bash
# Installs dependencies, checks formatting, builds (debug with ASan+UBSan and
# release), runs the unit tests with ctest and the integration tests with
# pytest against real etcd, master and worker processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== clang-format check"
files=$(git ls-files '*.c' '*.h' 2>/dev/null || find common master worker cli trainer -name '*.[ch]')
clang-format --dry-run --Werror $files

echo "== build (debug: ASan+UBSan)"
cmake --preset debug >/dev/null
cmake --build --preset debug
echo "== unit tests (debug)"
ASAN_OPTIONS=detect_leaks=1 ctest --preset debug --output-on-failure -j2

echo "== build (release)"
cmake --preset release >/dev/null
cmake --build --preset release
echo "== unit tests (release)"
ctest --preset release --output-on-failure -j2

if [ -d integration-tests ] && ls integration-tests/test_*.py >/dev/null 2>&1; then
  echo "== integration tests (release binaries)"
  TY_BUILD_DIR="$PWD/build/release" /usr/bin/python3 -m pytest -q -x integration-tests "$@"
fi
echo "== all tests passed"
