#!/usr/bin/env bash
# Installs every Debian 12 package Trainyard needs to build, test and run.
# Idempotent and non-interactive; uses sudo when not root.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config clang-format clang
  libczmq-dev libzmq3-dev libsodium-dev
  libprotobuf-c-dev protobuf-c-compiler
  libuv1-dev libyaml-dev libcurl4-openssl-dev libjansson-dev zlib1g-dev libssl-dev libmicrohttpd-dev
  libopenblas-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist
  etcd-server etcd-client
  python3 python3-pytest python3-pytest-timeout python3-zmq python3-onnx python3-numpy python3-torch
  procps iproute2 curl faketime tzdata util-linux prometheus
  ansible ansible-lint systemd
  chromium fonts-dejavu-core
)
# the browser tests drive chromium with playwright-core (integration-tests/ui,
# from the npm registry): Debian's node and npm unless a node is there
command -v npm >/dev/null 2>&1 || PKGS+=(nodejs npm)

# playwright-core, once, into integration-tests/ui/node_modules
npm_deps() {
  local ui
  ui="$(cd "$(dirname "$0")/.." && pwd)/integration-tests/ui"
  if [ ! -d "$ui/node_modules/playwright-core" ]; then
    echo "install-deps: npm install in integration-tests/ui (playwright-core)"
    (cd "$ui" && npm install --no-audit --no-fund --loglevel=error)
  fi
}

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Tasks run as this unprivileged user, not as the worker's (trainyard-worker
# --run-as; docs/security.md): its own group, no other, a home of its own.
if ! id trainyard >/dev/null 2>&1; then
  echo "install-deps: adding the user trainyard (tasks run as it)"
  $SUDO useradd --system --user-group --home-dir /var/lib/trainyard --create-home \
    --shell /usr/sbin/nologin trainyard
fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  npm_deps
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
npm_deps
