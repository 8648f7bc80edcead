#!/bin/bash
# run.sh SERVER_BIN PORT SCENARIO [bench flags…]: a fresh server on core 0, the generator
# ($GEN, by default the same binary) on core 1.
BIN=$1; PORT=$2; SC=$3; shift 3
GEN=${GEN:-$BIN}   # the generator binary (the runs in BENCHMARKS.md used one build for every run)
D=/tmp/storm/data-$PORT; rm -rf $D; mkdir -p $D
nice -n ${PRIO:-0} taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --data-dir $D --rate-burst 1000000 --rate-per-sec 1000000 \
  --max-connections-per-ip 0 --max-tcp-connections-per-ip 0 --signups-per-ip-per-hour 0 --rooms-per-user-per-hour 0 \
  --log warn > /tmp/storm/server-$PORT.log 2>&1 &
SPID=$!; echo $SPID > /tmp/storm/spid-$PORT
until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
nstat -n >/dev/null
nice -n ${PRIO:-0} taskset -c 1 $GEN bench $SC --node 127.0.0.1:$PORT --server-pid $SPID "$@" &
GPID=$!
[ -n "$MON" ] && nice -n ${PRIO:-0} $(dirname "$0")/schedmon.py $SPID $GPID $PORT $MON &
wait $GPID
RC=$?
echo "--- nstat (whole machine, during the run):"; nstat TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDrop TcpExtTCPReqQFullDoCookies 2>/dev/null | tail -n +2
echo "--- server log lines: $(grep -c . /tmp/storm/server-$PORT.log)"; grep -v "slow commit" /tmp/storm/server-$PORT.log | tail -5
kill $SPID; wait $SPID
exit $RC
