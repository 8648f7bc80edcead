#!/usr/bin/env bash
# One benchmark run: a fresh node (server pinned to core 0) and `confab bench` (core 1).
#
#   docs/benchmarks/bench.sh BIN SCENARIO RATE SECONDS [server flags…]
#
# SCENARIO: fo     fanout, 100 rooms × 50 members, 2 senders per room at RATE msg/s each
#           hot    hot room, 1 room × 2,000 members, 1 sender at RATE msg/s (--lazy-ack)
#           wr     the writer: 100 rooms × 2 members, 2 senders per room at RATE msg/s each
#           wr-pg  the same on a fresh PostgreSQL database ($PG, default
#                  postgres://postgres@127.0.0.1:5432), created and dropped here
# The data directory is fresh and removed after; the server's log is left in /tmp/cbench.
# GEN=path runs the generator from another binary (the same generator for two server builds).
set -uo pipefail
BIN=$1; SC=$2; RATE=$3; DUR=$4; shift 4
PG=${PG:-postgres://postgres@127.0.0.1:5432}
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
D=/tmp/cbench/data-$PORT; rm -rf "$D"; mkdir -p "$D"
DBARGS=()
if [ "$SC" = wr-pg ]; then
  DB=cbench_$PORT
  psql -q "$PG/postgres" -c "create database $DB" >/dev/null
  DBARGS=(--database-url "$PG/$DB")
fi
taskset -c 0 "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$D" "${DBARGS[@]}" \
  --rate-burst 1000000 --rate-per-sec 1000000 --max-connections-per-ip 0 --max-tcp-connections-per-ip 0 \
  --signups-per-ip-per-hour 0 --rooms-per-user-per-hour 0 --log warn "$@" > /tmp/cbench/server-$PORT.log 2>&1 &
SPID=$!
for _ in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/readyz >/dev/null && break; sleep 0.1; done
echo "### $SC rate=$RATE secs=$DUR flags=[$*] start=$(date -u +%H:%M:%S) load=$(cut -d' ' -f1 /proc/loadavg)"
B=(taskset -c 1 "${GEN:-$BIN}" bench)
case $SC in
  fo) "${B[@]}" fanout --node 127.0.0.1:$PORT --rooms 100 --members 50 --senders 2 --rate "$RATE" --duration "$DUR" --server-pid $SPID ;;
  hot) "${B[@]}" hot-room --node 127.0.0.1:$PORT --members 2000 --senders 1 --lazy-ack --rate "$RATE" --duration "$DUR" --server-pid $SPID ;;
  wr|wr-pg) "${B[@]}" fanout --node 127.0.0.1:$PORT --rooms 100 --members 2 --senders 2 --rate "$RATE" --duration "$DUR" --server-pid $SPID ;;
  *) echo "unknown scenario $SC" >&2 ;;
esac
rc=$?
echo "rc=$rc"
kill $SPID; wait $SPID 2>/dev/null
[ "$SC" = wr-pg ] && psql -q "$PG/postgres" -c "drop database $DB with (force)" >/dev/null
rm -rf "$D"
exit $rc
