#!/usr/bin/env bash
# A local Trainyard cluster on 127.0.0.1: etcd, M masters (one leads, the
# others stand by, sharing one data directory) and N workers, with all state
# under $TRAINYARD_HOME (default ./.trainyard).
#
#   scripts/cluster.sh start [--workers N] [--masters M] [--gpus-on-first K]
#   scripts/cluster.sh stop
#   scripts/cluster.sh status
#
# `start` prints the `export TRAINYARD_MASTER=...` line the CLI needs; `stop`
# ends only the processes this script started (their PIDs are recorded).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HOME_DIR="${TRAINYARD_HOME:-$PWD/.trainyard}"
BUILD="${TY_BUILD_DIR:-$ROOT/build/release}"
PIDS="$HOME_DIR/pids"
LOGS="$HOME_DIR/logs"
CLI="$BUILD/cli/trainyard"

die() { echo "cluster.sh: $*" >&2; exit 1; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# alive NAME: the recorded PID runs the program we started under that name
alive() {
  local f="$PIDS/$1.pid" pid exe
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -d "/proc/$pid" ] || return 1
  exe=$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null || true)
  case "$1" in
    etcd) [[ "$exe" == *etcd* ]] ;;
    master*) [[ "$exe" == *trainyard-master* ]] ;;
    *) [[ "$exe" == *trainyard-worker* ]] ;;
  esac
}

wait_for() { # wait_for SECONDS WHAT COMMAND...
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $end ] || die "timed out waiting for $what (logs in $LOGS)"
    sleep 0.1
  done
}

start() {
  local workers=2 gpus_first=0 masters=1
  while [ $# -gt 0 ]; do
    case "$1" in
      --workers) workers="$2"; shift 2 ;;
      --masters) masters="$2"; shift 2 ;;
      --gpus-on-first) gpus_first="$2"; shift 2 ;;
      *) die "unknown option $1 (use --workers N, --masters M, --gpus-on-first K)" ;;
    esac
  done
  [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers needs a number"
  [[ "$masters" =~ ^[1-9][0-9]*$ ]] || die "--masters needs a number from 1"
  [[ "$gpus_first" =~ ^[0-9]+$ ]] || die "--gpus-on-first needs a number"
  for b in master/trainyard-master worker/trainyard-worker cli/trainyard; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is not built (cmake --preset release && cmake --build --preset release)"
  done
  if alive master; then
    echo "cluster already running under $HOME_DIR" >&2
    cat "$HOME_DIR/env"
    return 0
  fi
  mkdir -p "$PIDS" "$LOGS"
  local cport pport
  cport=$(free_port); pport=$(free_port)
  # etcd over TLS, client certificates required (docs/security.md): a small
  # CA made once, kept across restarts
  local tls="$HOME_DIR/tls"
  "$ROOT/scripts/etcd-tls.sh" "$tls" >/dev/null
  local etcd_url="https://127.0.0.1:$cport"
  echo "starting etcd on $etcd_url (TLS, client certificates)" >&2
  etcd --name trainyard --data-dir "$HOME_DIR/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --client-cert-auth --trusted-ca-file "$tls/ca.pem" \
    --cert-file "$tls/etcd.pem" --key-file "$tls/etcd-key.pem" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "trainyard=http://127.0.0.1:$pport" >"$LOGS/etcd.log" 2>&1 &
  echo $! > "$PIDS/etcd.pid"
  wait_for 30 etcd curl -sf --cacert "$tls/ca.pem" --cert "$tls/master.pem" \
    --key "$tls/master-key.pem" "$etcd_url/health"

  # CurveZMQ keys (docs/security.md): one for the masters, one per worker
  # (named after its id), one for the local user; kept across restarts
  local keys="$HOME_DIR/keys" user; user=$(id -un 2>/dev/null || echo user)
  mkdir -p "$keys/clients" "$keys/workers"
  [ -e "$keys/master.key_secret" ] || "$CLI" keygen master --dir "$keys" >/dev/null
  [ -e "$keys/clients/$user.key_secret" ] || "$CLI" keygen "$user" --dir "$keys/clients" >/dev/null
  for i in $(seq 1 "$workers"); do
    [ -e "$keys/workers/worker-$i.key_secret" ] || \
      "$CLI" keygen "worker-$i" --dir "$keys/workers" >/dev/null
  done
  export TRAINYARD_KEY="$keys/clients/$user.key_secret" TRAINYARD_MASTER_KEY="$keys/master.key"
  # Tasks run as the unprivileged user trainyard (trainyard-worker --run-as)
  # and cannot read the keys above; steps that call the CLI (the retraining
  # loop) use a key of their own, "tasks", that only trainyard can read
  local tasks_key="$keys/tasks/tasks.key_secret"
  if [ "$(id -u)" -eq 0 ]; then
    id trainyard >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/trainyard \
      --create-home --shell /usr/sbin/nologin trainyard
  fi
  if [ ! -e "$tasks_key" ]; then
    mkdir -p "$keys/tasks"
    "$CLI" keygen tasks --dir "$keys/clients" >/dev/null
    mv "$keys/clients/tasks.key_secret" "$tasks_key"
    chmod 0700 "$keys/tasks"
    if [ "$(id -u)" -eq 0 ]; then chown -R trainyard:trainyard "$keys/tasks"; fi
  fi

  # The HTTP API (docs/api.md): on loopback, reads need no token; what
  # changes something needs the local user's token, kept in http-token
  if [ ! -e "$keys/http-tokens" ]; then
    (umask 077; openssl rand -hex 24 > "$keys/http-token"
     echo "$user $(cat "$keys/http-token")" > "$keys/http-tokens")
  fi

  # the first master leads; the others stand by (they share the data dir,
  # so logs written before a failover stay readable after it)
  local client_eps="" worker_eps="" i name cep wep hport http_url=""
  for i in $(seq 1 "$masters"); do
    name=master; [ "$i" -gt 1 ] && name="master-$i"
    cep="tcp://127.0.0.1:$(free_port)"; wep="tcp://127.0.0.1:$(free_port)"; hport=$(free_port)
    [ -n "$http_url" ] || http_url="http://127.0.0.1:$hport"
    echo "starting $name (clients $cep, workers $wep, http://127.0.0.1:$hport)" >&2
    "$BUILD/master/trainyard-master" --etcd "$etcd_url" --node-id "$(hostname)-m$i" \
      --client-bind "$cep" --worker-bind "$wep" --data-dir "$HOME_DIR/master" \
      --key "$keys/master.key_secret" --client-keys "$keys/clients" --worker-keys "$keys/workers" \
      --etcd-cacert "$tls/ca.pem" --etcd-cert "$tls/master.pem" --etcd-key "$tls/master-key.pem" \
      --http-bind "127.0.0.1:$hport" --http-tokens "$keys/http-tokens" \
      >"$LOGS/$name.log" 2>&1 &
    echo $! > "$PIDS/$name.pid"
    client_eps="${client_eps:+$client_eps,}$cep"; worker_eps="${worker_eps:+$worker_eps,}$wep"
    wait_for 30 "$name" "$CLI" --master "$cep" --timeout 1 info
  done
  local client_ep="$client_eps" worker_ep="$worker_eps"
  echo "export TRAINYARD_MASTER=$client_ep TRAINYARD_KEY=$TRAINYARD_KEY TRAINYARD_MASTER_KEY=$TRAINYARD_MASTER_KEY TRAINYARD_HTTP=$http_url TRAINYARD_HTTP_TOKEN=$keys/http-token" > "$HOME_DIR/env"
  echo "TRAINYARD_ETCD=$etcd_url" > "$HOME_DIR/etcd.url"

  for i in $(seq 1 "$workers"); do
    local extra=()
    if [ "$i" -eq 1 ] && [ "$gpus_first" -gt 0 ]; then extra=(--gpus "$gpus_first"); fi
    # steps find trainyard-train and the trainyard CLI, which reaches the masters
    # with the tasks' key; a root worker runs them as trainyard.  Each worker
    # is a host of its own to Open MPI (127.0.1.N, MPI over loopback), so MPI
    # gangs span them as they would span machines
    PATH="$BUILD/trainer:$BUILD/cli:$PATH" TRAINYARD_MASTER="$client_ep" TRAINYARD_KEY="$tasks_key" \
      "$BUILD/worker/trainyard-worker" --master "$worker_ep" --id "worker-$i" \
      --key "$keys/workers/worker-$i.key_secret" --master-key "$keys/master.key" \
      --work-dir "$HOME_DIR/work-$i" --address "127.0.1.$i" --mpi-if lo "${extra[@]}" \
      >"$LOGS/worker-$i.log" 2>&1 &
    echo $! > "$PIDS/worker-$i.pid"
  done
  local want=$workers
  wait_for 30 "$workers workers" bash -c \
    "[ \$('$CLI' --master '$client_ep' workers -o json | grep -c '\"state\": \"up\"') -ge $want ]"
  echo "cluster up: etcd, $masters master(s), $workers worker(s); state in $HOME_DIR" >&2
  cat "$HOME_DIR/env"
}

stop() {
  [ -d "$PIDS" ] || { echo "no cluster under $HOME_DIR" >&2; return 0; }
  local order=() f
  for f in "$PIDS"/worker-*.pid; do [ -e "$f" ] && order+=("$(basename "$f" .pid)"); done
  for f in "$PIDS"/master-*.pid; do [ -e "$f" ] && order+=("$(basename "$f" .pid)"); done
  order+=(master etcd)
  for name in "${order[@]}"; do
    if alive "$name"; then
      local pid; pid=$(cat "$PIDS/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
      echo "stopped $name (pid $pid)" >&2
    fi
    rm -f "$PIDS/$name.pid"
  done
}

status() {
  [ -d "$PIDS" ] || { echo "no cluster under $HOME_DIR"; return 1; }
  local rc=0 f name
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    name=$(basename "$f" .pid)
    if alive "$name"; then echo "$name: running (pid $(cat "$f"))"; else echo "$name: not running"; rc=1; fi
  done
  if alive master; then
    # shellcheck disable=SC1091
    source "$HOME_DIR/env"
    "$CLI" workers || true
  fi
  return $rc
}

cmd="${1:-}"; shift || true
case "$cmd" in
  start) start "$@" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [--workers N] [--masters M] [--gpus-on-first K] | stop | status" >&2; exit 2 ;;
esac
