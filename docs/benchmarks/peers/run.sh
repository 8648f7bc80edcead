#!/usr/bin/env bash
# One run against a reference peer: uWebSockets.js (uws/server.js) pinned to core 0, `confab
# bench` from GEN pinned to core 1, with the scenarios of ../bench.sh:
#
#   docs/benchmarks/peers/run.sh GEN fo|hot RATE SECONDS
#   docs/benchmarks/peers/run.sh GEN idle
#
# The pinned npm package is installed once into ${UWS_DIR:-$HOME/.cache/confab-uws}.
set -uo pipefail
GEN=$1; SC=$2; RATE=${3:-0}; DUR=${4:-10}
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${UWS_DIR:-${HOME:-/root}/.cache/confab-uws}
if [ ! -d "$DIR/node_modules/@trufflesuite/uws-js-unofficial" ]; then
  mkdir -p "$DIR" && cp "$HERE/uws/package.json" "$DIR/"
  (cd "$DIR" && npm install --no-audit --no-fund >/dev/null) || { echo "npm install failed" >&2; exit 1; }
fi
cp "$HERE/uws/server.js" "$DIR/server.js"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
taskset -c 0 node "$DIR/server.js" "$PORT" > "/tmp/uws-$PORT.log" 2>&1 &
SPID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done
echo "### uws $SC rate=$RATE secs=$DUR start=$(date -u +%H:%M:%S) load=$(cut -d' ' -f1 /proc/loadavg)"
B=(taskset -c 1 "$GEN" bench)
case $SC in
  fo) "${B[@]}" fanout --node 127.0.0.1:$PORT --rooms 100 --members 50 --senders 2 --rate "$RATE" --duration "$DUR" --server-pid $SPID ;;
  hot) "${B[@]}" hot-room --node 127.0.0.1:$PORT --members 2000 --senders 1 --lazy-ack --rate "$RATE" --duration "$DUR" --server-pid $SPID ;;
  idle) "${B[@]}" idle --node 127.0.0.1:$PORT --connections 19500 --join --hold 20 --server-pid $SPID ;;
  *) echo "unknown scenario $SC" >&2 ;;
esac
rc=$?
echo "rc=$rc"
kill $SPID; wait $SPID 2>/dev/null
exit $rc
