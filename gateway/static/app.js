// Confab — plain browser page. One ES module, no framework, no build step.
// Untrusted data (bodies, usernames, room names) is only ever rendered via textContent.

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
};
const pad = (n) => String(n).padStart(2, '0');
const hhmm = (ts) => { const d = new Date(ts); return ts ? `${pad(d.getHours())}:${pad(d.getMinutes())}` : ''; };
const newCid = () => (typeof crypto.randomUUID === 'function'
  ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2));
const showText = (id, text) => { $(id).textContent = text || ''; $(id).hidden = !text; };

// ---- state ------------------------------------------------------------------
let me = null;                 // {id, username, role}
let rooms = [];                // from GET /api/rooms
let room = null;               // selected room object
let roomReady = false;         // newest page loaded -> safe to join with `since`
let loadFailed = false;        // REST history failed -> join without `since`
let reloadAfterJoin = false;   // retry REST history once after joining (e.g. became member)
let joinedRoom = null;         // room id the current socket has a `joined` answer for
let joinWaiting = null;        // room id of a `join` sent and not yet answered
let loadToken = 0;             // invalidates in-flight loads when switching rooms
let shown = new Set();         // seqs displayed in the selected room
let maxSeq = 0, minSeq = 0, hasMore = false, loadingOlder = false;
const pending = new Map();     // cid -> {frame, el}: sent but not yet acked
const online = new Map();      // user id -> username
let onlineHidden = 0;          // online users the `joined` list left out (it is capped)
const typers = new Map();      // user id -> {name, timer}
const lastRead = new Map();    // room id -> last seq reported as read

let ws = null, helloed = false, stopped = true, everConnected = false;
let backoff = 500, nextDelay = 0, retryTimer = 0, pingTimer = 0, lastRecv = 0;
let typingSentAt = 0, typingIdle = 0, readTimer = 0, bannerTimer = 0;

// ---- REST -------------------------------------------------------------------
// Writes carry the CSRF token: the readable `confab_csrf` cookie, echoed in a header that a
// page on another site can neither read nor set.
function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)confab_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

async function rawApi(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let data = null;
  if (res.status !== 204) { try { data = await res.json(); } catch { /* empty body */ } }
  if (!res.ok) {
    const err = new Error(data?.error?.message || `Request failed (${res.status})`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// Access tokens live 15 minutes: on a 401, rotate the refresh cookie once and try again.
let refreshing = null;
function refreshLogin() {
  refreshing ??= rawApi('POST', '/api/auth/refresh').finally(() => { refreshing = null; });
  return refreshing;
}

async function api(method, path, body) {
  try {
    return await rawApi(method, path, body);
  } catch (e) {
    if (e.status !== 401 || path.startsWith('/api/auth/')) throw e;
    await refreshLogin();
    return rawApi(method, path, body);
  }
}

const handleApiError = (e) => (e.status === 401 ? sessionLost() : showBanner(e.message));

// The session cookie is HttpOnly, so the page cannot see it. This flag only remembers that the
// page logged in, so a logged-out visit does not start with a failing GET /api/me (a 401 in the
// console). Without storage we just ask the server.
const SESSION_HINT = 'confab.session';
function setSessionHint(on) {
  try { if (on) localStorage.setItem(SESSION_HINT, '1'); else localStorage.removeItem(SESSION_HINT); } catch { /* no storage */ }
}
function hasSessionHint() {
  try { return localStorage.getItem(SESSION_HINT) !== null; } catch { return true; }
}

// ---- auth -------------------------------------------------------------------
function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  showText('auth-error', message);
  $('username').focus();
}

async function authenticate(kind) {
  const username = $('username').value.trim(), password = $('password').value;
  showText('auth-error', '');
  if (!username || !password) return showText('auth-error', 'Enter a username and a password.');
  if (kind === 'register') { // the server's rules, checked here first to save a round trip
    if (!/^[A-Za-z0-9_]{3,32}$/.test(username)) return showText('auth-error', 'Username: 3 to 32 letters, digits or _.');
    if ([...password].length < 8) return showText('auth-error', 'Password: at least 8 characters.');
  }
  $('login').disabled = $('register').disabled = true;
  try {
    const data = await api('POST', `/api/auth/${kind}`, { username, password });
    $('password').value = '';
    startApp(data.user);
  } catch (e) {
    showText('auth-error', e.message);
  } finally {
    $('login').disabled = $('register').disabled = false;
  }
}

function startApp(user) {
  me = user;
  setSessionHint(true);
  stopped = everConnected = false;
  backoff = 500;
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me').textContent = user.username;
  connect();
  loadRooms().then(() => {
    const r = rooms.find((x) => x.name === 'general') || rooms[0];
    if (r) selectRoom(r.id);
  });
}

async function logout() {
  if (stopped) return;
  // The server closes our socket when the session ends: that must not look like a dropped
  // connection (reconnect, GET /api/me -> 401 -> "Your session has ended").
  stopped = true;
  clearTimeout(retryTimer);
  try { await api('POST', '/api/auth/logout'); } catch { /* leave anyway */ }
  teardown();
  showAuth('');
}

function sessionLost() {
  if (!stopped) { teardown(); showAuth('Your session has ended. Please log in again.'); }
}

function teardown() {
  const s = ws;
  stopped = true;
  ws = me = room = null;
  joinedRoom = joinWaiting = null;
  helloed = false;
  setSessionHint(false);
  s?.close();
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  rooms = [];
  loadToken++;
  for (const m of [pending, lastRead]) m.clear();
  clearTypers();
  resetMessages();
  clearOnline();
  hideBanner();
  $('rooms').replaceChildren();
  $('room-title').textContent = '';
  document.title = 'Confab';
}

// ---- rooms ------------------------------------------------------------------
async function loadRooms() {
  try { rooms = (await api('GET', '/api/rooms')).rooms || []; } catch (e) { return handleApiError(e); }
  if (room) room = rooms.find((x) => x.id === room.id) || room;
  renderRooms();
}

function renderRooms() {
  $('rooms').replaceChildren(...rooms.map((r) => {
    const li = el('li', room && r.id === room.id ? 'room active' : 'room');
    li.dataset.roomId = r.id;
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    li.append(el('span', 'room-name', r.name));
    if (r.visibility === 'private') li.append(el('span', 'tag', 'private'));
    if (!r.member) li.append(el('span', 'tag', 'join'));
    if (r.description) li.title = r.description;
    return li;
  }));
}

async function selectRoom(id) {
  const r = rooms.find((x) => x.id === id);
  $('app').classList.remove('rooms-open');
  if (!r || r.id === room?.id) return;
  stopTyping();
  if (room && (joinedRoom === room.id || joinWaiting === room.id)) wsSend({ type: 'leave', room: room.id });
  room = r;
  renderRooms();
  $('room-title').textContent = r.name;
  document.title = `#${r.name} · Confab`;
  clearOnline();
  clearTypers();
  hideBanner();
  await loadNewest(true);
}

async function createRoom(e) {
  e.preventDefault();
  const name = $('new-room-name').value.trim();
  if (!name) return;
  const visibility = $('new-room-private').checked ? 'private' : 'public';
  showText('room-error', '');
  $('create-room').disabled = true;
  try {
    const data = await api('POST', '/api/rooms', { name, description: '', visibility });
    const r = data.room || data;
    $('new-room-name').value = '';
    $('new-room-private').checked = false;
    await loadRooms();
    if (!rooms.some((x) => x.id === r.id)) rooms.push({ ...r, member: true });
    selectRoom(r.id);
  } catch (err) {
    if (err.status === 401) sessionLost(); else showText('room-error', err.message);
  } finally {
    $('create-room').disabled = false;
  }
}

// ---- history ----------------------------------------------------------------
function resetMessages() {
  shown = new Set();
  maxSeq = minSeq = 0;
  hasMore = false;
  $('messages').replaceChildren();
  $('load-older').hidden = true;
}

// Newest page over REST first, then join with since = highest seq loaded (no gap).
async function loadNewest(retry) {
  const token = ++loadToken, id = room.id;
  roomReady = reloadAfterJoin = false;
  joinedRoom = joinWaiting = null; // sends wait for the `joined` of the (re)join below
  resetMessages();
  let data;
  try {
    data = await api('GET', `/api/rooms/${id}/messages?limit=50`);
  } catch (e) {
    if (token !== loadToken) return;
    if (e.status === 401) return sessionLost();
    showBanner(e.message);
    loadFailed = roomReady = true;
    reloadAfterJoin = retry;
    return joinCurrent();
  }
  if (token !== loadToken) return;
  loadFailed = false;
  hasMore = !!data.has_more;
  for (const m of data.messages || []) insertMsg({ room: id, ...m });
  for (const p of pending.values()) if (p.frame.room === id) $('messages').append(p.el);
  $('load-older').hidden = !hasMore;
  scrollToBottom();
  roomReady = true;
  joinCurrent();
}

async function loadOlder() {
  if (!room || !roomReady || !hasMore || loadingOlder || !minSeq) return;
  loadingOlder = $('load-older').disabled = true;
  const token = loadToken, id = room.id, sc = $('scroller');
  const fromBottom = sc.scrollHeight - sc.scrollTop;
  try {
    const data = await api('GET', `/api/rooms/${id}/messages?before=${minSeq}&limit=50`);
    if (token !== loadToken) return;
    hasMore = !!data.has_more;
    for (const m of data.messages || []) insertMsg({ room: id, ...m });
    sc.scrollTop = sc.scrollHeight - fromBottom; // keep the viewport where it was
  } catch (e) {
    handleApiError(e);
  } finally {
    loadingOlder = $('load-older').disabled = false;
    $('load-older').hidden = !hasMore;
  }
}

// Keep #messages sorted by seq and never insert a seq twice.
// Pending (unacked) messages have no data-seq and always stay at the end.
function insertMsg(m) {
  if (!room || m.room !== room.id || typeof m.seq !== 'number' || shown.has(m.seq)) return false;
  shown.add(m.seq);
  maxSeq = Math.max(maxSeq, m.seq);
  minSeq = minSeq ? Math.min(minSeq, m.seq) : m.seq;
  let next = null, node = $('messages').lastElementChild;
  while (node && (node.dataset.seq === undefined || Number(node.dataset.seq) > m.seq)) {
    next = node;
    node = node.previousElementSibling;
  }
  $('messages').insertBefore(renderMsg(m), next);
  return true;
}

function renderMsg(m) {
  const div = el('div', me && m.from?.id === me.id ? 'msg own' : 'msg');
  if (m.seq != null) div.dataset.seq = m.seq;
  const meta = el('div', 'meta');
  const time = el('time', 'time', hhmm(m.ts));
  if (m.ts) {
    time.dateTime = new Date(m.ts).toISOString();
    time.title = new Date(m.ts).toLocaleString();
  }
  meta.append(el('span', 'from', m.from?.username ?? 'unknown'), time);
  if (m.reply_to != null) meta.append(el('span', 'reply', `↪ #${m.reply_to}`));
  div.append(meta, el('div', 'body', m.body ?? ''));
  return div;
}

const scroller = $('scroller');
const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
const scrollToBottom = () => { scroller.scrollTop = scroller.scrollHeight; };

function addLive(m) {
  const atBottom = nearBottom();
  if (!insertMsg(m)) return;
  if (atBottom) scrollToBottom();
  scheduleRead();
}

// ---- sending ----------------------------------------------------------------
function sendMessage() {
  const box = $('composer'), body = box.value.trim();
  if (!body || !room) return;
  const frame = { type: 'send', room: room.id, cid: newCid(), body, reply_to: null };
  const node = renderMsg({ from: me, body, ts: Date.now() });
  node.classList.add('pending');
  node.dataset.cid = frame.cid;
  pending.set(frame.cid, { frame, el: node });
  $('messages').append(node);
  scrollToBottom();
  // Not joined yet: it stays pending and goes out (same cid) on `joined`. Not even joining (a
  // refused join): join again, which either works or fails this message with the reason.
  if (!sendPending(frame) && !joinWaiting) joinCurrent();
  box.value = '';
  stopTyping();
  box.focus();
}

// The server refuses sends to a room this socket has not joined: wait for its `joined`.
function sendPending(frame) {
  return joinedRoom === frame.room && wsSend(frame);
}

// A send the server refused: never resent; say why on the message itself.
function failPending(cid, message) {
  const p = pending.get(cid);
  if (!p) return;
  pending.delete(cid);
  p.el.classList.replace('pending', 'failed');
  p.el.append(el('div', 'send-error', `Not sent: ${message}`));
  const box = $('composer');
  if (room && p.frame.room === room.id && !box.value) box.value = p.frame.body; // let them edit it
}

function onAck(f) {
  const p = pending.get(f.cid);
  if (!p) return;
  pending.delete(f.cid);
  p.el.remove();
  // While a page is loading, the join replay delivers it instead.
  if (room && f.room === room.id && roomReady) {
    addLive({ room: f.room, seq: f.seq, id: f.id, from: me, body: p.frame.body, ts: f.ts, reply_to: p.frame.reply_to });
  }
}

// ---- typing / presence / read -----------------------------------------------
function onComposerInput() {
  if (!room) return;
  if (!$('composer').value.trim()) return stopTyping();
  const now = Date.now();
  if (now - typingSentAt >= 3000 && wsSend({ type: 'typing', room: room.id, on: true })) typingSentAt = now;
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, 5000);
}

function stopTyping() {
  clearTimeout(typingIdle);
  if (typingSentAt && room) wsSend({ type: 'typing', room: room.id, on: false });
  typingSentAt = 0;
}

function onTyping(f) {
  if (!room || f.room !== room.id || !f.user || f.user.id === me?.id) return;
  dropTyper(f.user.id);
  if (f.on) { // expire on our own in case the "off" frame is lost
    typers.set(f.user.id, { name: f.user.username, timer: setTimeout(() => dropTyper(f.user.id), 8000) });
  }
  renderTyping();
}

function dropTyper(id) {
  const t = typers.get(id);
  if (t) { clearTimeout(t.timer); typers.delete(id); renderTyping(); }
}

function clearTypers() {
  for (const t of typers.values()) clearTimeout(t.timer);
  typers.clear();
  renderTyping();
}

function renderTyping() {
  const n = [...typers.values()].map((t) => t.name);
  $('typing').textContent = n.length === 0 ? ''
    : n.length === 1 ? `${n[0]} is typing…`
    : n.length === 2 ? `${n[0]} and ${n[1]} are typing…` : 'Several people are typing…';
}

function renderOnline() {
  const users = [...online.entries()].sort((a, b) => a[1].localeCompare(b[1]));
  const items = users.map(([id, name]) => el('li', id === me?.id ? 'self' : '', name));
  if (onlineHidden > 0) items.push(el('li', 'more', `and ${onlineHidden} more`));
  $('online').replaceChildren(...items);
  const n = users.length + onlineHidden;
  $('online-count').textContent = n ? `(${n})` : '';
}

function clearOnline() {
  online.clear();
  onlineHidden = 0;
  renderOnline();
}

function scheduleRead() { clearTimeout(readTimer); readTimer = setTimeout(sendRead, 400); }

function sendRead() {
  if (!room || !maxSeq || joinedRoom !== room.id || document.visibilityState !== 'visible') return;
  if ((lastRead.get(room.id) || 0) >= maxSeq) return;
  if (wsSend({ type: 'read', room: room.id, seq: maxSeq })) lastRead.set(room.id, maxSeq);
}

// ---- WebSocket --------------------------------------------------------------
function setStatus(s) { $('status').textContent = s; $('status').className = `pill ${s}`; }

function wsSend(frame) {
  if (!ws || !helloed || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(frame));
  return true;
}

function connect() {
  clearTimeout(retryTimer);
  if (stopped) return;
  setStatus(everConnected ? 'reconnecting' : 'connecting');
  const sock = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  ws = sock;
  helloed = false;
  joinedRoom = joinWaiting = null;
  sock.addEventListener('open', () => {
    lastRecv = Date.now();
    clearInterval(pingTimer);
    pingTimer = setInterval(ping, 25000);
  });
  sock.addEventListener('message', (ev) => {
    if (sock !== ws) return;
    lastRecv = Date.now();
    let f;
    try { f = JSON.parse(ev.data); } catch { return; }
    handleFrame(f);
  });
  sock.addEventListener('close', () => handleClose(sock));
}

function handleClose(sock) {
  if (sock !== ws) return; // stale socket, or already handled
  ws = null;
  helloed = false;
  joinedRoom = joinWaiting = null;
  clearInterval(pingTimer);
  if (stopped) return;
  setStatus('reconnecting');
  clearOnline();
  clearTypers();
  retryTimer = setTimeout(connect, nextDelay || backoff);
  nextDelay = 0;
  backoff = Math.min(backoff * 2, 10000);
  // A dropped socket may mean the session expired: check without blocking.
  api('GET', '/api/me').catch((e) => { if (e.status === 401) sessionLost(); });
}

function dropSocket() {
  const s = ws;
  if (s) { s.close(); handleClose(s); }
}

function ping() {
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - lastRecv > 60000) return dropSocket(); // silently dead connection
  ws.send(JSON.stringify({ type: 'ping' }));
}

function joinCurrent() {
  if (!room || !roomReady || !helloed) return;
  const frame = { type: 'join', room: room.id };
  if (!loadFailed || maxSeq > 0) frame.since = maxSeq;
  if (wsSend(frame)) joinWaiting = room.id;
}

// What a refused `join` can answer. Join errors carry no `ref`, so while a join is unanswered
// (and nothing else ref-less can fail: reads wait for `joined`), a ref-less one of these is its answer.
const JOIN_ERRORS = new Set(['retry', 'overloaded', 'internal', 'unknown_room', 'not_member', 'too_many_rooms', 'forbidden']);

function handleFrame(f) {
  const here = !!room && f.room === room.id;
  switch (f.type) {
    case 'reauth': // the socket's access token is about to expire: refresh and re-authenticate
      refreshLogin().then((d) => wsSend({ type: 'auth', token: d.token })).catch(() => sessionLost());
      break;
    case 'authenticated':
      break;
    case 'hello':
      if (everConnected) loadRooms(); // rooms created meanwhile
      helloed = everConnected = true;
      backoff = 500;
      if (f.user) $('me').textContent = (me = f.user).username;
      setStatus('online');
      joinCurrent(); // since = highest displayed seq: no gap, no duplicates; pending sends follow `joined`
      break;
    case 'joined': {
      if (!here) break;
      joinedRoom = room.id;
      joinWaiting = null;
      online.clear();
      for (const u of f.online || []) online.set(u.id, u.username);
      if (me) online.set(me.id, me.username); // the list leaves out the joiner
      onlineHidden = Math.max(0, (f.online_count || 0) - online.size);
      renderOnline();
      if (!room.member) { room.member = true; renderRooms(); }
      for (const p of pending.values()) sendPending(p.frame); // same cid: the server dedupes
      if (reloadAfterJoin) loadNewest(false); else scheduleRead();
      break;
    }
    case 'message': // while the newest page loads, drop live frames: the join replays them
      if (here && roomReady) { addLive(f); if (f.from) dropTyper(f.from.id); }
      break;
    case 'ack':
      onAck(f);
      break;
    case 'error': {
      const p = f.ref != null && pending.get(f.ref);
      const again = f.code === 'retry' || f.code === 'overloaded';
      const text = f.message || f.code || 'Something went wrong';
      if (p && again) {
        // Not refused, just not now: send the same frame again shortly (the cid keeps it once).
        setTimeout(() => { if (pending.has(f.ref)) sendPending(p.frame); }, 300 + Math.random() * 700);
        break;
      }
      if (f.ref == null && joinWaiting != null && JOIN_ERRORS.has(f.code)) {
        const id = joinWaiting;
        joinWaiting = null;
        if (again) { // e.g. the room actor is restarting: join again shortly
          setTimeout(() => { if (room?.id === id && joinedRoom !== id && !joinWaiting) joinCurrent(); }, 300 + Math.random() * 700);
          break;
        }
        for (const [cid, q] of pending) if (q.frame.room === id) failPending(cid, text);
      }
      if (p) { // refused: never resend
        const inView = room && p.frame.room === room.id;
        failPending(f.ref, text);
        if (inView) break; // said on the message itself
      }
      showBanner(text);
      if (f.code === 'not_authenticated') sessionLost();
      break;
    }
    case 'typing':
      onTyping(f);
      break;
    case 'presence':
      if (!here || !f.user) break;
      if (f.online) online.set(f.user.id, f.user.username);
      else { online.delete(f.user.id); dropTyper(f.user.id); }
      renderOnline();
      break;
    case 'reconnect': // come back shortly; we rejoin with since = highest displayed seq
      nextDelay = 250 + Math.random() * 750;
      dropSocket();
      break;
    case 'resync': // too far behind: reload the newest page, then rejoin
      if (here) loadNewest(false);
      break;
    default: // pong, unknown frames
  }
}

// ---- error banner -----------------------------------------------------------
function showBanner(text) {
  showText('error-banner', text);
  clearTimeout(bannerTimer);
  bannerTimer = setTimeout(hideBanner, 8000);
}

function hideBanner() { clearTimeout(bannerTimer); $('error-banner').hidden = true; }

// ---- wiring -----------------------------------------------------------------
$('auth-form').addEventListener('submit', (e) => { e.preventDefault(); authenticate('login'); });
$('register').addEventListener('click', () => authenticate('register'));
$('logout').addEventListener('click', logout);
$('new-room').addEventListener('submit', createRoom);
$('load-older').addEventListener('click', loadOlder);
$('error-banner').addEventListener('click', hideBanner);
$('toggle-rooms').addEventListener('click', () => {
  if ($('app').classList.toggle('rooms-open') && me) loadRooms();
});
document.querySelector('.chat').addEventListener('pointerdown', () => $('app').classList.remove('rooms-open'));
document.addEventListener('keydown', (e) => { if (e.key === 'Escape') $('app').classList.remove('rooms-open'); });
scroller.addEventListener('scroll', () => { if (scroller.scrollTop < 40) loadOlder(); });

function onRoomPick(e) {
  const li = e.target.closest('li[data-room-id]');
  if (!li || (e.type === 'keydown' && e.key !== 'Enter' && e.key !== ' ')) return;
  e.preventDefault();
  selectRoom(Number(li.dataset.roomId));
}
$('rooms').addEventListener('click', onRoomPick);
$('rooms').addEventListener('keydown', onRoomPick);

$('compose').addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
$('composer').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
});
$('composer').addEventListener('input', onComposerInput);
$('composer').addEventListener('blur', stopTyping);
document.addEventListener('visibilitychange', () => {
  sendRead();
  if (document.visibilityState === 'visible' && me && !stopped) loadRooms(); // rooms others created
});

// ---- boot: are we already logged in (cookie)? -------------------------------
if (hasSessionHint()) {
  api('GET', '/api/me').then((data) => startApp(data.user)).catch((e) => {
    if (e.status === 401) setSessionHint(false);
    showAuth(e.status === 401 ? '' : e.message);
  });
} else showAuth('');
