#!/usr/bin/env bash
# Installs dependencies, checks formatting, builds (debug with ASan+UBSan and
# release), runs the unit tests with ctest, the fuzz harnesses for a few
# seconds each, and the integration tests with pytest against real etcd,
# master and worker processes.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== clang-format check"
files=$(git ls-files '*.c' '*.h' '*.cu' 2>/dev/null || find common master worker cli trainer -name '*.[ch]' -o -name '*.cu')
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

# libFuzzer harnesses (docs/fuzzing.md), a few seconds each under ASan+UBSan
echo "== fuzz (5 s a harness)"
scripts/fuzz.sh --seconds 5

# against the ASan+UBSan binaries: a sanitizer report in a daemon's log fails the test
echo "== integration tests (debug binaries)"
TY_BUILD_DIR="$PWD/build/debug" /usr/bin/python3 -m pytest -q integration-tests "$@"
echo "== all tests passed"
