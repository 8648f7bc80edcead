#!/usr/bin/env bash
# The compose test (issue 22): docker-compose.yml brought up for real, on a machine that reaches
# no image registry.
#
# 1. Tools: Docker's engine (Debian's docker.io), Compose (`docker compose`, else Debian's
#    docker-compose), debootstrap; dockerd is started (vfs storage) when none answers, and
#    stopped again at the end.
# 2. Base images, made once and kept in Docker between runs (rebuilt when BASE_RECIPE changes):
#    a Debian bookworm root file system from debootstrap (with ca-certificates), imported as
#    `debian:bookworm-slim`, the base the Dockerfiles name; the same with Debian's PostgreSQL 15
#    for docker/postgres-offline.Dockerfile (as CONFAB_POSTGRES_IMAGE, for `postgres:16`).
# 3. The node and Garage images: the `runtime` stage of ./Dockerfile and docker/garage.Dockerfile
#    (the stages that need no Rust image) plus binaries built outside Docker
#    (docker/prebuilt.Dockerfile): the `confab` debug binary of this checkout (a release build
#    would cost CI a second full build; the test is about the cluster, not speed), stripped, and
#    .ci/garage.sh's Garage.
# 4. tests/tests/compose.rs (ignored in the ordinary test runs) drives the cluster: `docker
#    compose up`, chat through two nodes, `docker kill` the room's owner, scale to four nodes,
#    `docker compose stop` one (a drain), `docker compose down -v`.
#
# By hand: `bash .ci/compose-test.sh` (as root, like CI). Prints its duration.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME:-/root}/confab-target}"
CACHE="${HOME:-/root}/.cache/confab-docker"
BASE_RECIPE=1
mkdir -p "$CACHE"
log() { echo "--- compose-test: $*"; }
export DEBIAN_FRONTEND=noninteractive
apt_install() { apt-get install -y -qq "$@" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }; }

# 1. Tools.
command -v dockerd >/dev/null || { log "installing docker.io"; apt_install docker.io; }
command -v debootstrap >/dev/null || { log "installing debootstrap"; apt_install debootstrap; }
if docker compose version >/dev/null 2>&1; then
  COMPOSE="docker compose"
else
  command -v docker-compose >/dev/null || { log "installing docker-compose"; apt_install docker-compose; }
  COMPOSE="docker-compose"
fi
export CONFAB_COMPOSE="$COMPOSE"

# With vfs storage every container is a full copy of its image: the cluster needs about 3 GB.
avail_kb=$(df -k --output=avail /var/lib | tail -n 1)
if [ "$avail_kb" -lt $((3 * 1024 * 1024)) ]; then
  echo "compose-test: only $((avail_kb / 1024)) MB free under /var/lib; Docker needs about 3 GB here" >&2
  exit 1
fi

DOCKERD_PID=""
WORK="$(mktemp -d)"
cleanup() {
  rm -rf "$WORK"
  if [ -n "$DOCKERD_PID" ]; then
    log "stopping the dockerd this script started"
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.1; done
  fi
  log "took $((SECONDS - started)) s"
}
trap cleanup EXIT
if ! docker info >/dev/null 2>&1; then
  log "starting dockerd (vfs storage; log in $CACHE/dockerd.log)"
  dockerd --storage-driver vfs >"$CACHE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { tail -n 20 "$CACHE/dockerd.log" >&2; exit 1; }
fi

# 2. Base images.
has_image() { [ "$(docker image inspect -f '{{index .Config.Labels "confab.recipe"}}' "$1" 2>/dev/null)" = "$BASE_RECIPE" ]; }
# A root file system's tar, slimmed as Debian's slim images are, imported as image $2.
import_rootfs() {
  local root="$1" tag="$2"
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* \
    "$root"/usr/sbin/policy-rc.d "$root"/etc/resolv.conf
  tar -C "$root" -c . | docker import -c 'CMD ["bash"]' -c "LABEL confab.recipe=$BASE_RECIPE" - "$tag" >/dev/null
}
if ! has_image debian:bookworm-slim || ! has_image confab-offline/postgres-base:15; then
  log "making the base images with debootstrap (once per machine)"
  root="$WORK/rootfs"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log" >&2; exit 1; }
  # PostgreSQL on a copy, installed in a chroot: no service started, no cluster made.
  pg="$WORK/pgroot"
  cp -a "$root" "$pg"
  printf '#!/bin/sh\nexit 101\n' >"$pg/usr/sbin/policy-rc.d" && chmod +x "$pg/usr/sbin/policy-rc.d"
  mkdir -p "$pg/etc/postgresql-common" && echo "create_main_cluster = false" >"$pg/etc/postgresql-common/createcluster.conf"
  cp /etc/resolv.conf "$pg/etc/resolv.conf"
  chroot "$pg" apt-get install -y -qq --no-install-recommends postgresql-15 >"$WORK/pg.log" 2>&1 \
    || { tail -n 20 "$WORK/pg.log" >&2; exit 1; }
  import_rootfs "$root" debian:bookworm-slim
  import_rootfs "$pg" confab-offline/postgres-base:15
  rm -rf "$root" "$pg"
fi
docker build -q -f docker/postgres-offline.Dockerfile --build-arg BASE=confab-offline/postgres-base:15 \
  -t confab-offline/postgres:15 docker >/dev/null

# 3. The node's and Garage's images from binaries built here.
log "building the confab binary (debug)"
cargo build -q -p confab --bin confab
.ci/garage.sh install
mkdir -p "$WORK/node" "$WORK/garage" "$WORK/empty"
strip -o "$WORK/node/confab" "$CARGO_TARGET_DIR/debug/confab"
cp "${CONFAB_GARAGE_CACHE:-${HOME:-/root}/.cache/confab-garage}/bin/garage" "$WORK/garage/garage"
log "building the images"
docker build -q --target runtime -t confab-offline/runtime -f Dockerfile "$WORK/empty" >/dev/null
docker build -q --target runtime -t confab-offline/garage-runtime -f docker/garage.Dockerfile docker >/dev/null
docker build -q -f docker/prebuilt.Dockerfile --build-arg RUNTIME=confab-offline/runtime --build-arg BINARY=confab \
  -t confab-offline/confab:test "$WORK/node" >/dev/null
docker build -q -f docker/prebuilt.Dockerfile --build-arg RUNTIME=confab-offline/garage-runtime --build-arg BINARY=garage \
  -t confab-offline/garage:test "$WORK/garage" >/dev/null
export CONFAB_IMAGE=confab-offline/confab:test CONFAB_GARAGE_IMAGE=confab-offline/garage:test \
  CONFAB_POSTGRES_IMAGE=confab-offline/postgres:15
log "images ready after $((SECONDS - started)) s"

# 4. The test.
cargo nextest run -p confab-tests --test compose --run-ignored ignored-only --no-capture
