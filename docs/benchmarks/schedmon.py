#!/usr/bin/env python3
# mon.py SPID GPID PORT OUT: every 200 ms, for the server and the generator, CPU received and
# time runnable-but-waiting (% of one core, summed over threads, from /proc/<pid>/task/*/schedstat),
# the listen socket's accept queue, the server's fds and the machine's ListenOverflows.
import os, sys, time, subprocess
spid, gpid, port, out = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4], 'w')
def sched(pid):
    run = wait = 0
    for t in os.listdir(f'/proc/{pid}/task'):
        try:
            a = open(f'/proc/{pid}/task/{t}/schedstat').read().split()
            run += int(a[0]); wait += int(a[1])
        except Exception:
            pass
    return run, wait
def overflows():
    lines = open('/proc/net/netstat').read().splitlines()
    for h, v in zip(lines[0::2], lines[1::2]):
        if h.startswith('TcpExt:'):
            return int(dict(zip(h.split()[1:], v.split()[1:]))['ListenOverflows'])
last = (time.time(), sched(spid), sched(gpid))
while os.path.exists(f'/proc/{spid}') and os.path.exists(f'/proc/{gpid}'):
    time.sleep(0.2)
    try:
        now, s, g = time.time(), sched(spid), sched(gpid)
        q = subprocess.run(['ss', '-ltnH', f'sport = :{port}'], capture_output=True, text=True).stdout.split()
        fds = len(os.listdir(f'/proc/{spid}/fd'))
    except Exception:
        break
    dt = (now - last[0]) * 1e7
    out.write(f'{now:.2f} server cpu {(s[0]-last[1][0])/dt:4.0f}% wait {(s[1]-last[1][1])/dt:4.0f}%  gen cpu {(g[0]-last[2][0])/dt:4.0f}% wait {(g[1]-last[2][1])/dt:4.0f}%  acceptq {q[1] if len(q)>1 else "-"} fds {fds} overflows {overflows()}\n'); out.flush()
    last = (now, s, g)
