// @ts-check
// socket.js — the one WebSocket to /ws: connect, reconnect with jittered exponential backoff
// (0.5 s doubling to 15 s), keep-alive pings, a dead-connection check, token renewal (`reauth`)
// and the server's `reconnect` hint. It knows nothing of rooms: it puts its state in the store
// (`status`) and hands every frame, `hello` included, to the registry (`frames.js`), where the
// rooms feature rejoins each room with `since` after each `hello`. A close with a reason is handed
// on as a `closed` frame (`{type: 'closed', code, reason}`), so a feature can show a kick or a ban.

import { refreshLogin } from './api.js';
import { dispatch } from './frames.js';
import { store } from './store.js';

const PING_EVERY = 25000, DEAD_AFTER = 60000, MAX_BACKOFF = 15000;

/** @typedef {import('./types.js').Status} Status */

export class Socket {
  /** @param {{onAuthLost: () => void}} hooks */
  constructor({ onAuthLost }) {
    this.onAuthLost = onAuthLost;
    /** @type {WebSocket | null} */
    this.ws = null;
    this.ready = false;        // `hello` received on the current socket
    this.stopped = true;
    this.backoff = 500;
    this.retryTimer = 0;
    this.pingTimer = 0;
    this.lastRecv = 0;
    this.retryAt = 0;
  }

  /** @param {Status} s */
  status(s) {
    store.update('status', (st) => { st.status = s; });
  }

  start() {
    this.stopped = false;
    this.backoff = 500;
    this.connect(false);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    const s = this.ws;
    this.ws = null;
    this.ready = false;
    s?.close();
  }

  /**
   * Sends a frame now; false when not connected (the caller keeps it and retries after `hello`).
   * @param {object} frame
   */
  send(frame) {
    if (!this.ws || !this.ready || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Reconnects now (e.g. the browser says it is back online). */
  nudge() {
    if (!this.stopped && !this.ws) { clearTimeout(this.retryTimer); this.connect(true); }
  }

  /** @param {boolean} again */
  connect(again) {
    clearTimeout(this.retryTimer);
    if (this.stopped) return;
    this.status(again ? 'reconnecting' : 'connecting');
    const sock = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
    this.ws = sock;
    this.ready = false;
    sock.addEventListener('open', () => {
      this.lastRecv = Date.now();
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.ping(), PING_EVERY);
    });
    sock.addEventListener('message', (ev) => {
      if (sock !== this.ws) return;
      this.lastRecv = Date.now();
      let f;
      try { f = JSON.parse(ev.data); } catch { return; }
      this.handle(f);
    });
    sock.addEventListener('close', (ev) => {
      // The server's reason (`kicked`, `banned`) reaches features as a `closed` frame of our own.
      if (sock === this.ws && ev.reason) dispatch({ type: 'closed', code: ev.code, reason: ev.reason });
      this.closed(sock, 0);
    });
  }

  /** @param {import('./types.js').Frame} f */
  handle(f) {
    switch (f.type) {
      case 'hello':
        this.ready = true;
        this.backoff = 500;
        this.status('online');
        dispatch(f);
        return;
      case 'reauth': // the access token expires soon: refresh it and re-authenticate this socket
        refreshLogin().then((d) => this.send({ type: 'auth', token: d.token })).catch(() => this.onAuthLost());
        return;
      case 'authenticated':
      case 'pong':
        return;
      case 'reconnect': // the server asks us to come back (shutdown, lagging): rejoin with since
        this.drop(250 + Math.random() * 750);
        return;
      default:
        dispatch(f);
    }
  }

  /** @param {WebSocket} sock @param {number} delay */
  closed(sock, delay) {
    if (sock !== this.ws) return; // a stale socket, or already handled
    this.ws = null;
    this.ready = false;
    clearInterval(this.pingTimer);
    if (this.stopped) return;
    const wait = delay || this.backoff * (0.75 + Math.random() * 0.5);
    this.backoff = Math.min(this.backoff * 2, MAX_BACKOFF);
    this.retryAt = Date.now() + wait;
    this.status('offline');
    this.retryTimer = setTimeout(() => this.connect(true), wait);
  }

  /** @param {number} delay */
  drop(delay) {
    const s = this.ws;
    if (s) { s.close(); this.closed(s, delay); }
  }

  ping() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastRecv > DEAD_AFTER) return this.drop(0); // silently dead
    this.ws.send(JSON.stringify({ type: 'ping' }));
  }
}
