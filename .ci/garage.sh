#!/usr/bin/env bash
# A real S3 server for the tests: Garage (a self-hosted, distributed S3 store), one node on free
# loopback ports with its data under a directory of the caller's.
#
#   .ci/garage.sh install      build Garage once into a cache outside the clone (skipped when the
#                              cached binary is the pinned version)
#   .ci/garage.sh start DIR    install if needed, start one node (SQLite metadata, replication
#                              factor 1, a random RPC secret, a single-node layout, a bucket and
#                              a random key) with its data in DIR, wait until S3 answers a signed
#                              request, and write DIR/env: the CONFAB_TEST_S3_* variables
#                              (`. DIR/env`)
#   .ci/garage.sh stop DIR     stop that node (its pid is in DIR/garage.pid)
#
# By hand: `.ci/garage.sh start /tmp/garage && . /tmp/garage/env`, then run the tests.
set -euo pipefail

GARAGE_VERSION=2.5.0
GARAGE_ROOT="${CONFAB_GARAGE_CACHE:-${HOME:-/root}/.cache/confab-garage}"
GARAGE="$GARAGE_ROOT/bin/garage"
BUCKET=confab-test
REGION=garage

log() { echo "--- garage: $*" >&2; }

install_garage() {
  if [ -x "$GARAGE" ] && [ "$(cat "$GARAGE_ROOT/version" 2>/dev/null)" = "$GARAGE_VERSION" ]; then
    return 0
  fi
  log "installing Garage $GARAGE_VERSION into $GARAGE_ROOT (once; a few minutes)"
  # Its own target dir, outside the clone and apart from Confab's build; only what a single test
  # node needs (SQLite metadata, bundled C libraries).
  CARGO_TARGET_DIR="${GARAGE_ROOT}-build" cargo install garage --version "$GARAGE_VERSION" --locked \
    --no-default-features --features bundled-libs,sqlite --root "$GARAGE_ROOT" --quiet
  echo "$GARAGE_VERSION" >"$GARAGE_ROOT/version"
  rm -rf "${GARAGE_ROOT}-build"
}

# A TCP port nothing listens on now (bound and released at once by the kernel's choice).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    ss -ltn "sport = :$p" | grep -q ":$p" || { echo "$p"; return; }
  done
}

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

start_garage() {
  local dir="$1"
  install_garage
  mkdir -p "$dir/meta" "$dir/data"
  dir="$(cd "$dir" && pwd)"
  local s3_port rpc_port
  s3_port=$(free_port); rpc_port=$(free_port)
  cat >"$dir/garage.toml" <<EOF
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(hex 32)"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3_port"
root_domain = ".s3.garage.localhost"
EOF
  # One node that lays itself out (--single-node) and makes the bucket and key of the env.
  local key_id="GK$(hex 12)" secret
  secret=$(hex 32)
  GARAGE_DEFAULT_ACCESS_KEY="$key_id" GARAGE_DEFAULT_SECRET_KEY="$secret" GARAGE_DEFAULT_BUCKET="$BUCKET" \
    RUST_LOG=warn "$GARAGE" -c "$dir/garage.toml" server --single-node --default-bucket >"$dir/garage.log" 2>&1 &
  echo $! >"$dir/garage.pid"
  log "started pid $(cat "$dir/garage.pid"), S3 on 127.0.0.1:$s3_port, data in $dir"
  # Ready when S3 answers a signed listing of the bucket (the key and bucket exist), within a
  # deadline.
  local deadline=$((SECONDS + 60))
  until curl -sf -o /dev/null --aws-sigv4 "aws:amz:$REGION:s3" --user "$key_id:$secret" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    "http://127.0.0.1:$s3_port/$BUCKET?list-type=2&max-keys=1"; do
    if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
      log "the node exited:"; tail -n 20 "$dir/garage.log" >&2; return 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "S3 did not answer within 60 s:"; tail -n 20 "$dir/garage.log" >&2; stop_garage "$dir"; return 1
    fi
    sleep 0.2
  done
  cat >"$dir/env" <<EOF
export CONFAB_TEST_S3_ENDPOINT=http://127.0.0.1:$s3_port
export CONFAB_TEST_S3_BUCKET=$BUCKET
export CONFAB_TEST_S3_REGION=$REGION
export CONFAB_TEST_S3_ACCESS_KEY=$key_id
export CONFAB_TEST_S3_SECRET_KEY=$secret
EOF
  log "ready: bucket $BUCKET at http://127.0.0.1:$s3_port (. $dir/env)"
}

stop_garage() {
  local dir="$1" pid
  pid=$(cat "$dir/garage.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
}

case "${1:-}" in
  install) install_garage ;;
  start) start_garage "${2:?usage: $0 start DIR}" ;;
  stop) stop_garage "${2:?usage: $0 stop DIR}" ;;
  *) echo "usage: $0 install | start DIR | stop DIR" >&2; exit 2 ;;
esac
