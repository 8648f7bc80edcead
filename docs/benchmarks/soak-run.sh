#!/bin/bash
# soak.sh BIN PORT [soak flags…]: a fresh server on core 0 (nice 0), the soak generator on
# core 1 at nice 10; output in /tmp/storm/soak-$PORT.{out,err}.
BIN=$1; PORT=$2; shift 2
D=/tmp/storm/data-$PORT; rm -rf $D; mkdir -p $D
taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --data-dir $D --rate-burst 1000000 --rate-per-sec 1000000 \
  --max-connections-per-ip 0 --max-tcp-connections-per-ip 0 --signups-per-ip-per-hour 0 --rooms-per-user-per-hour 0 \
  --log warn > /tmp/storm/server-$PORT.log 2>&1 &
SPID=$!; echo $SPID > /tmp/storm/spid-$PORT
until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
nice -n 10 taskset -c 1 $BIN bench soak --node 127.0.0.1:$PORT --server-pid $SPID "$@" > /tmp/storm/soak-$PORT.out 2> /tmp/storm/soak-$PORT.err
RC=$?
echo "exit $RC" >> /tmp/storm/soak-$PORT.out
kill $SPID; wait $SPID
