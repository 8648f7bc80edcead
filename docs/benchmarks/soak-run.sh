#!/bin/bash
# soak.sh BIN PORT [soak flags…] (more server flags in $SERVER_FLAGS): a fresh server on
# core 0 (nice 0), the soak generator on core 1 at nice 10; output in
# /tmp/storm/soak-$PORT.{out,err}, with the server's mean CPU (share of one core) over the run
# appended. Access tokens last 3 h: the generator does not
# refresh them.
BIN=$1; PORT=$2; shift 2
D=/tmp/storm/data-$PORT; rm -rf $D; mkdir -p $D
taskset -c 0 $BIN serve --listen 127.0.0.1:$PORT --data-dir $D --rate-burst 1000000 --rate-per-sec 1000000 \
  --max-connections-per-ip 0 --max-tcp-connections-per-ip 0 --signups-per-ip-per-hour 0 --rooms-per-user-per-hour 0 \
  --access-ttl-secs 10800 --log warn $SERVER_FLAGS > /tmp/storm/server-$PORT.log 2>&1 &
SPID=$!; echo $SPID > /tmp/storm/spid-$PORT
until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do sleep 0.1; done
cpu() { awk '{print $14+$15}' /proc/$SPID/stat; }
T0=$(date +%s.%N); C0=$(cpu)
nice -n 10 taskset -c 1 $BIN bench soak --node 127.0.0.1:$PORT --server-pid $SPID "$@" > /tmp/storm/soak-$PORT.out 2> /tmp/storm/soak-$PORT.err
RC=$?
T1=$(date +%s.%N); C1=$(cpu)
echo "server CPU: $(echo "($C1-$C0)/$(getconf CLK_TCK)/($T1-$T0)*100" | bc -l | cut -c1-5)% of a core over $(echo "$T1-$T0" | bc | cut -d. -f1) s" >> /tmp/storm/soak-$PORT.out
echo "exit $RC" >> /tmp/storm/soak-$PORT.out
kill $SPID; wait $SPID
