#!/usr/bin/env bash
# Issue 27's cross-node cost: the server CPU of a delivery when the members of each room sit on
# three nodes, against one node holding them all.
#
#   docs/benchmarks/cross-node.sh BIN one|three|owner|remote RATE SECONDS
#
# one     one node (PostgreSQL, like the cluster), every connection on it
# three   three nodes of a cluster on one PostgreSQL and one S3 bucket, connections spread over
#         them round-robin (so most of a room's members are on a node that does not own it)
# owner   the same three nodes, every member of a room (senders too) on the node that owns it:
#         every delivery local (`confab bench fanout --placement owner`)
# remote  the same three nodes, every member of a room on the two nodes that do not own it:
#         every send and every delivery crosses a node-to-node link (`--placement remote`)
# Every node is pinned to core 0, the generator to core 1; `--server-pid`/`--also-pid` sum the
# nodes' CPU over the sending window. The fanout scenario of bench.sh (100 rooms × 50 members,
# 2 senders each). Needs PostgreSQL ($PG, default postgres://postgres@127.0.0.1:5432) and, for
# the three-node modes, the CONFAB_TEST_S3_* variables of `.ci/garage.sh start DIR` (`. DIR/env`); a
# cluster refuses to start without shared blob storage, but this scenario uploads nothing, so any
# endpoint will do when no S3 server runs.
set -uo pipefail
BIN=$1; MODE=$2; RATE=$3; DUR=$4
PG=${PG:-postgres://postgres@127.0.0.1:5432}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
W=$(mktemp -d /tmp/xnode.XXXX)
DB=xnode_$(free_port)
psql -q "$PG/postgres" -c "create database $DB" >/dev/null
head -c 64 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/auth-secret"
"$BIN" cluster init --out "$W/cluster.key" >/dev/null
N=3; PLACE=spread
case $MODE in one) N=1 ;; three) ;; owner|remote) PLACE=$MODE ;; *) echo "unknown mode $MODE" >&2; exit 2 ;; esac
declare -a HTTP GOSSIP CLUSTER PIDS
for i in $(seq 0 $((N - 1))); do HTTP[$i]=$(free_port); GOSSIP[$i]=$(free_port); CLUSTER[$i]=$(free_port); done
for i in $(seq 0 $((N - 1))); do
  CL=()
  if [ "$N" -gt 1 ]; then
    seeds=$(for j in $(seq 0 $((N - 1))); do [ "$j" != "$i" ] && printf '127.0.0.1:%s,' "${GOSSIP[$j]}"; done)
    printf '%s' "$CONFAB_TEST_S3_SECRET_KEY" > "$W/s3-secret"
    CL=(--node-id "n$i" --gossip-listen "127.0.0.1:${GOSSIP[$i]}" --cluster-listen "127.0.0.1:${CLUSTER[$i]}"
        --cluster-key-file "$W/cluster.key" --seeds "${seeds%,}"
        --blob-store s3 --s3-endpoint "$CONFAB_TEST_S3_ENDPOINT" --s3-allow-http true --s3-bucket "$CONFAB_TEST_S3_BUCKET"
        --s3-region "$CONFAB_TEST_S3_REGION" --s3-access-key "$CONFAB_TEST_S3_ACCESS_KEY" --s3-secret-key-file "$W/s3-secret"
        --s3-prefix "xnode-$DB/")
  fi
  mkdir -p "$W/n$i"
  taskset -c 0 "$BIN" serve --listen "127.0.0.1:${HTTP[$i]}" --data-dir "$W/n$i" --database-url "$PG/$DB" \
    --auth-secret-file "$W/auth-secret" "${CL[@]}" \
    --rate-burst 1000000 --rate-per-sec 1000000 --max-connections-per-ip 0 --max-tcp-connections-per-ip 0 \
    --signups-per-ip-per-hour 0 --rooms-per-user-per-hour 0 --log warn > "$W/n$i.log" 2>&1 &
  PIDS[$i]=$!
done
for i in $(seq 0 $((N - 1))); do
  for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:${HTTP[$i]}/readyz" >/dev/null && break; sleep 0.1; done
done
if [ "$N" -gt 1 ]; then
  # Every node sees the other two as members before the load starts.
  for i in $(seq 0 $((N - 1))); do
    for _ in $(seq 1 300); do
      curl -sf "http://127.0.0.1:${HTTP[$i]}/metrics" | grep -q '^confab_cluster_live_nodes 3$' && break; sleep 0.1
    done
  done
fi
echo "### cross-node $MODE rate=$RATE secs=$DUR start=$(date -u +%H:%M:%S) load=$(cut -d' ' -f1 /proc/loadavg)"
NODES=(); for i in $(seq 0 $((N - 1))); do NODES+=(--node "127.0.0.1:${HTTP[$i]}"); done
ALSO=(); for i in $(seq 1 $((N - 1))); do ALSO+=(--also-pid "${PIDS[$i]}"); done
taskset -c 1 "$BIN" bench fanout "${NODES[@]}" --rooms 100 --members 50 --senders 2 --rate "$RATE" --duration "$DUR" \
  --placement "$PLACE" --server-pid "${PIDS[0]}" "${ALSO[@]}"
rc=$?
echo "rc=$rc"
kill "${PIDS[@]}"; wait "${PIDS[@]}" 2>/dev/null
psql -q "$PG/postgres" -c "drop database $DB with (force)" >/dev/null
rm -rf "$W"
exit $rc
