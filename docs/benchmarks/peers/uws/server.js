// uWebSockets.js (v20.30, the build `@trufflesuite/uws-js-unofficial` that loads on Node 20 and
// glibc 2.36) speaking the part of Confab's protocol that `confab bench` uses, so that fanout,
// hot room and idle run against it unchanged: register or log in (a token), create a room (an
// id), `/ws` with a bearer token (`hello`), `join` (`joined` with the head), `send` (the message
// to every member through uWS's own pub/sub, then an `ack` to the sender), `ping`.
//
// A baseline, not a chat server: nothing is stored, a token is not checked beyond its presence,
// a room's seq lives in memory. What it measures is the fastest raw WebSocket pub/sub people
// deploy, as issue 27 asks.
//
//   node server.js PORT        (docs/benchmarks/peers/run.sh starts it)
'use strict';
const uWS = require('@trufflesuite/uws-js-unofficial');

const port = parseInt(process.argv[2] || '9001', 10);
const rooms = new Map(); // room id -> { seq }
let nextRoom = 1;
let nextUser = 1;

function json(res, status, body) {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body));
  });
}

// Reads a JSON body, then calls `done(body)`; a bad body gets 400.
function withBody(res, done) {
  let chunks = [];
  let aborted = false;
  res.onAborted(() => { aborted = true; });
  res.onData((ab, isLast) => {
    chunks.push(Buffer.from(ab.slice(0)));
    if (!isLast || aborted) return;
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
    } catch (e) {
      return json(res, '400 Bad Request', { code: 'invalid' });
    }
    done(body);
  });
}

const app = uWS.App();
app.post('/api/auth/register', (res) => withBody(res, (b) => json(res, '201 Created', { token: `u${nextUser++}.${b.username}` })));
app.post('/api/auth/login', (res) => withBody(res, (b) => json(res, '200 OK', { token: `u${nextUser++}.${b.username}` })));
app.post('/api/rooms', (res) => withBody(res, () => {
  const id = nextRoom++;
  rooms.set(id, { seq: 0 });
  json(res, '201 Created', { id });
}));
app.get('/readyz', (res) => { res.end('ok'); });

app.ws('/ws', {
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  // Large enough that no subscriber is ever skipped: the benchmark counts every delivery.
  maxBackpressure: 256 * 1024 * 1024,
  upgrade: (res, req, context) => {
    const auth = req.getHeader('authorization');
    if (!auth.startsWith('Bearer ')) {
      res.writeStatus('401 Unauthorized').end();
      return;
    }
    res.upgrade({ token: auth.slice(7) }, req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => { ws.send('{"type":"hello","user":{"id":0},"protocol":1}'); },
  message: (ws, ab) => {
    let f;
    try {
      f = JSON.parse(Buffer.from(ab).toString());
    } catch (e) {
      ws.send('{"type":"error","code":"bad_frame"}');
      return;
    }
    if (f.type === 'join') {
      const r = rooms.get(f.room);
      if (!r) {
        ws.send(JSON.stringify({ type: 'error', code: 'not_found', room: f.room }));
        return;
      }
      ws.subscribe(`r${f.room}`);
      ws.send(`{"type":"joined","room":${f.room},"head":${r.seq}}`);
    } else if (f.type === 'send') {
      const r = rooms.get(f.room);
      if (!r) return;
      const seq = ++r.seq;
      const cid = JSON.stringify(f.cid);
      // app.publish reaches the sender too, as Confab's fan-out does (it is a member).
      app.publish(`r${f.room}`, `{"type":"message","room":${f.room},"seq":${seq},"cid":${cid},"body":${JSON.stringify(f.body)}}`);
      ws.send(`{"type":"ack","room":${f.room},"cid":${cid},"seq":${seq}}`);
    } else if (f.type === 'ping') {
      ws.send('{"type":"pong"}');
    }
  },
});

app.listen('127.0.0.1', port, (token) => {
  if (!token) {
    console.error(`cannot listen on ${port}`);
    process.exit(1);
  }
  console.log(`uWebSockets.js peer on 127.0.0.1:${port}`);
});
