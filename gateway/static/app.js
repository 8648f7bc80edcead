// app.js — Confab's browser app: sign-in, wiring, and what each server frame does. Plain ES
// modules, no build step, no framework; the CSP allows no inline script, so nothing is inline.
//
// One socket joins every room the user is a member of (rooms it sees unread counts and last
// messages for), each with `since` = the highest seq received, so a reconnect replays exactly
// what was missed: no gap, and the list ignores a seq it already shows, so no duplicate.

import { $, el, showText, newCid, humanError } from './js/dom.js';
import { api, setSessionHint, hasSessionHint } from './js/api.js';
import { Socket } from './js/socket.js';
import { state, roomFrom, currentRoom, isMe } from './js/state.js';
import * as view from './js/messages.js';
import { renderRoomList, wireRoomDialog, wireInfo, showInfo, hideInfo, infoOpen, renderMembers } from './js/rooms.js';

const socket = new Socket({ onFrame, onOpen: rejoinAll, onStatus: setStatus, onAuthLost: sessionLost });
const LAST_ROOM = 'confab.room';

// ---- sign-in ------------------------------------------------------------------
function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  showText('auth-error', message);
  $('username').focus();
}

function pickTab(email) {
  $('tab-password').setAttribute('aria-selected', String(!email));
  $('tab-email').setAttribute('aria-selected', String(email));
  $('password-form').hidden = email;
  $('email-form').hidden = !email;
  (email ? $('email') : $('username')).focus();
}

async function passwordAuth(kind) {
  const username = $('username').value.trim(), password = $('password').value;
  showText('auth-error', '');
  if (!username || !password) return showText('auth-error', 'Enter a username and a password.');
  if (kind === 'register') { // the server's rules, checked here first
    if (!/^[A-Za-z0-9_]{3,32}$/.test(username)) return showText('auth-error', 'Username: 3 to 32 letters, digits or _.');
    if ([...password].length < 8) return showText('auth-error', 'Password: at least 8 characters.');
  }
  $('login').disabled = $('register').disabled = true;
  try {
    const data = await api('POST', `/api/auth/${kind}`, { username, password });
    $('password').value = '';
    startApp(data.user);
  } catch (e) {
    showText('auth-error', e.status === 401 ? 'Wrong username or password.' : humanError(e.code, e.message));
  } finally {
    $('login').disabled = $('register').disabled = false;
  }
}

let codeSent = false;
async function emailAuth() {
  const email = $('email').value.trim(), code = $('code').value.trim();
  showText('email-error', '');
  if (!email.includes('@')) return showText('email-error', 'Enter your email address.');
  $('email-submit').disabled = true;
  try {
    if (!codeSent || !code) {
      await api('POST', '/api/auth/email/request', { email });
      codeSent = true;
      $('code-label').hidden = false;
      showText('email-note', `We sent a 6-digit code to ${email}. It is valid for 10 minutes.`);
      $('email-submit').textContent = 'Sign in';
      $('code').focus();
    } else {
      const data = await api('POST', '/api/auth/email/verify', { email, code });
      startApp(data.user);
    }
  } catch (e) {
    showText('email-error', e.status === 401 ? 'That code is not right. Check the email and try again.' : humanError(e.code, e.message));
  } finally {
    $('email-submit').disabled = false;
  }
}

function startApp(user) {
  state.me = user;
  setSessionHint(true);
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me').textContent = user.username;
  showNotifyButton();
  socket.start();
  loadRooms().then(() => {
    const wanted = Number((location.hash.match(/^#room\/(\d+)$/) || [])[1] || localStorage.getItem(LAST_ROOM));
    const r = state.rooms.get(wanted) || [...state.rooms.values()].find((x) => x.name === 'general') || state.rooms.values().next().value;
    if (r) selectRoom(r.id);
  });
}

async function logout() {
  socket.stop(); // the server closes our socket: that must not look like a dropped connection
  try { await api('POST', '/api/auth/logout'); } catch { /* leave anyway */ }
  teardown();
  showAuth('');
}

function sessionLost() {
  if (!state.me) return;
  socket.stop();
  teardown();
  showAuth('Your session has ended. Please log in again.');
}

function teardown() {
  state.me = null;
  state.current = null;
  state.rooms.clear();
  state.pending.clear();
  setSessionHint(false);
  view.clear();
  hideInfo();
  clearReply();
  clearTypers();
  $('rooms').replaceChildren();
  document.title = 'Confab';
}

// ---- rooms --------------------------------------------------------------------
// Every page of GET /api/rooms (500 rooms a page, following `next`).
async function allRooms() {
  const rooms = [];
  let path = '/api/rooms?limit=500';
  for (let page = 0; page < 200; page++) {
    const data = await api('GET', path);
    rooms.push(...(data.rooms || []));
    if (data.next == null) break;
    path = `/api/rooms?limit=500&after=${encodeURIComponent(data.next)}`;
  }
  return rooms;
}
// The list from REST, merged into what the socket already tracks (never moving `seen` back).
async function loadRooms() {
  let rooms;
  try { rooms = await allRooms(); } catch (e) { return apiFailed(e); }
  const ids = new Set();
  for (const r of rooms) {
    ids.add(r.id);
    const known = state.rooms.get(r.id);
    if (!known) { state.rooms.set(r.id, roomFrom(r)); continue; }
    const { seen, joined, joining, online, onlineExtra, last, unread, read_seq, head_seq } = known;
    Object.assign(known, r, { seen, joined, joining, online, onlineExtra });
    if (last && (!r.last || last.seq > r.last.seq)) known.last = last;
    // The server may not have stored a cursor this page just sent, nor a message it just got.
    known.read_seq = Math.max(read_seq || 0, r.read_seq || 0);
    known.head_seq = Math.max(head_seq || 0, r.head_seq || 0);
    if (r.id === state.current) known.unread = unread;
    else known.unread = Math.max(0, known.head_seq - known.read_seq);
  }
  for (const id of state.rooms.keys()) if (!ids.has(id)) state.rooms.delete(id);
  renderRooms();
  rejoinAll();
}

const renderRooms = () => renderRoomList(selectRoom);

async function selectRoom(id) {
  const r = state.rooms.get(id);
  closeDrawer();
  if (!r || id === state.current) return;
  // What was on screen in the room being left counts as read now, not after the usual pause.
  clearTimeout(readTimer);
  sendRead();
  stopTyping();
  clearReply();
  clearTypers();
  showText('compose-error', '');
  state.current = id;
  try { localStorage.setItem(LAST_ROOM, String(id)); } catch { /* no storage */ }
  history.replaceState(null, '', `#room/${id}`);
  $('room-title').textContent = r.name;
  renderSub();
  renderRooms();
  if (infoOpen()) showInfo(r);
  if (!r.joined && !r.joining) join(r); // a public room: joining makes us a member
  try {
    await view.openRoom(r, { onReply: startReply });
  } catch (e) {
    return apiFailed(e, true);
  }
  markRead();
}

function renderSub() {
  const r = currentRoom();
  if (!r) return;
  const n = r.online.size + r.onlineExtra;
  const parts = [];
  if (r.description) parts.push(r.description);
  if (r.joined) parts.push(`${n} online`);
  $('room-sub').textContent = parts.join(' · ');
}

// ---- the socket ---------------------------------------------------------------
function setStatus(s) {
  const text = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…', offline: 'Offline' }[s];
  $('status').textContent = text;
  $('status').dataset.state = s;
  clearInterval(setStatus.timer);
  if (s === 'online') { $('conn-banner').hidden = true; return; }
  if (s === 'offline' || s === 'reconnecting') {
    for (const r of state.rooms.values()) { r.joined = r.joining = false; r.online.clear(); r.onlineExtra = 0; }
    clearTypers();
    renderSub();
    const tick = () => {
      const secs = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
      showText('conn-banner', s === 'offline' && secs > 0
        ? `Disconnected. Reconnecting in ${secs} s… Messages you write will be sent when the connection is back.`
        : 'Disconnected. Reconnecting…');
    };
    tick();
    setStatus.timer = setInterval(tick, 1000);
    // The drop may be the login's end, or an expired access cookie that a refresh renews (the
    // socket's upgrade needs a valid one): GET /api/me does the refresh, or says it is over.
    if (s === 'offline') api('GET', '/api/me').catch((e) => { if (e.status === 401) sessionLost(); });
  }
}

function join(r) {
  if (socket.send({ type: 'join', room: r.id, since: r.seen })) r.joining = true;
}

// After every `hello`: join each member room (and the open one) from the last seq received.
function rejoinAll() {
  if (!socket.ready) return;
  for (const r of state.rooms.values()) {
    if ((r.member || r.id === state.current) && !r.joined && !r.joining) join(r);
  }
}

function onFrame(f) {
  const r = f.room != null ? state.rooms.get(f.room) : null;
  switch (f.type) {
    case 'joined':
      if (!r) break;
      r.joined = true;
      r.joining = false;
      r.online = new Map((f.online || []).map((u) => [u.id, u.username]));
      if (state.me) r.online.set(state.me.id, state.me.username); // the list leaves out the joiner
      r.onlineExtra = Math.max(0, (f.online_count || 0) - r.online.size);
      if (!r.member) { r.member = true; renderRooms(); }
      for (const p of state.pending.values()) if (p.frame.room === r.id) socket.send(p.frame); // same cid: deduped
      if (r.id === state.current) { renderSub(); renderMembers(r); markRead(); }
      break;
    case 'message':
      if (r) onMessage(r, f);
      break;
    case 'ack':
      onAck(f);
      break;
    case 'error':
      onError(f, r);
      break;
    case 'typing':
      if (r && r.id === state.current && f.user && !isMe(f.user)) setTyper(f.user, f.on);
      break;
    case 'presence':
      if (!r || !f.user) break;
      if (f.online) r.online.set(f.user.id, f.user.username); else r.online.delete(f.user.id);
      if (r.id === state.current) { if (!f.online) setTyper(f.user, false); renderSub(); renderMembers(r); }
      break;
    case 'left':
      if (r) r.joined = false;
      break;
    case 'resync': // too far behind to replay: reload the newest page and go on from the head
      if (!r) break;
      r.seen = f.head;
      r.joined = false;
      join(r);
      if (r.id === state.current) { state.current = null; selectRoom(r.id); }
      break;
    default: // frames this client does not use
  }
}

function onMessage(r, m) {
  r.seen = Math.max(r.seen, m.seq);
  r.head_seq = Math.max(r.head_seq || 0, m.seq);
  if (!r.last || m.seq >= r.last.seq) r.last = m;
  const other = !isMe(m.from);
  if (m.from) setTyper(m.from, false);
  if (r.id === state.current && view.shownRoom() === r.id) view.addLive(m, other);
  if (other) r.unread = Math.max(0, r.head_seq - (r.read_seq || 0)); // markRead lowers it as the user reads
  renderRooms();
  markRead();
  if (other && (document.hidden || r.id !== state.current)) notify(r, m);
}

// ---- sending ------------------------------------------------------------------
function sendMessage() {
  const box = $('composer'), body = box.value.trim(), r = currentRoom();
  if (!body || !r) return;
  showText('compose-error', '');
  const frame = { type: 'send', room: r.id, cid: newCid(), body, reply_to: state.replyTo?.seq ?? null };
  const node = view.render({ from: state.me, body, reply_to: frame.reply_to });
  node.classList.add('pending');
  node.dataset.cid = frame.cid;
  node.querySelector('.time').textContent = 'sending…';
  state.pending.set(frame.cid, { frame, el: node });
  $('messages').append(node);
  $('empty').hidden = true;
  view.scrollToBottom();
  if (!(r.joined && socket.send(frame)) && !r.joining) join(r); // sent on `joined`
  box.value = '';
  autosize();
  clearReply();
  stopTyping();
  box.focus();
}

function onAck(f) {
  const p = state.pending.get(f.cid);
  if (!p) return;
  state.pending.delete(f.cid);
  p.el.remove();
  const r = state.rooms.get(f.room);
  if (r) onMessage(r, { room: f.room, seq: f.seq, id: f.id, from: state.me, body: p.frame.body, ts: f.ts, reply_to: p.frame.reply_to });
}

function onError(f, r) {
  const text = humanError(f.code, f.message);
  const p = f.ref != null ? state.pending.get(f.ref) : null;
  if (p && (f.code === 'retry' || f.code === 'overloaded')) { // not refused, just not now
    setTimeout(() => { if (state.pending.has(f.ref)) socket.send(p.frame); }, 300 + Math.random() * 700);
    return;
  }
  if (p) return failPending(f.ref, text);
  if (r) { // a refused join, leave or read
    r.joining = false;
    if (f.code === 'retry' || f.code === 'overloaded') { setTimeout(() => { if (!r.joined && socket.ready) join(r); }, 500 + Math.random() * 500); return; }
    for (const [cid, q] of state.pending) if (q.frame.room === r.id) failPending(cid, text);
    if (r.id === state.current) showText('compose-error', text);
    return;
  }
  if (f.code === 'not_authenticated') return sessionLost();
  showText('compose-error', text);
}

// A refused send is never resent: say why on the message, and give the text back to edit.
function failPending(cid, text) {
  const p = state.pending.get(cid);
  state.pending.delete(cid);
  p.el.classList.replace('pending', 'failed');
  p.el.querySelector('.time').textContent = 'not sent';
  p.el.querySelector('.bubble').append(el('div', 'send-error', text));
  if (p.frame.room === state.current) {
    showText('compose-error', text);
    if (!$('composer').value) { $('composer').value = p.frame.body; autosize(); }
  }
}

// ---- reading ------------------------------------------------------------------
var readTimer = 0; // var: selectRoom may run before this line is evaluated
function markRead() { clearTimeout(readTimer); readTimer = setTimeout(sendRead, 300); }

function sendRead() {
  const r = currentRoom();
  if (!r || !r.joined || view.shownRoom() !== r.id) return;
  const seq = view.readableSeq();
  if (!seq || seq <= (r.read_seq || 0)) return;
  if (!socket.send({ type: 'read', room: r.id, seq })) return;
  r.read_seq = seq;
  r.unread = Math.max(0, (r.head_seq || 0) - seq);
  renderRooms();
}

// ---- replies ------------------------------------------------------------------
function startReply(m) {
  state.replyTo = { seq: m.seq, name: m.from?.username ?? 'unknown', body: m.body ?? '' };
  $('reply-who').textContent = `Replying to ${state.replyTo.name}:`;
  $('reply-body').textContent = state.replyTo.body.slice(0, 140);
  $('reply-box').hidden = false;
  $('composer').focus();
}

function clearReply() {
  state.replyTo = null;
  $('reply-box').hidden = true;
}

// ---- typing -------------------------------------------------------------------
let typingSentAt = 0, typingIdle = 0;
const typers = new Map(); // user id -> {name, timer}

function onComposerInput() {
  autosize();
  const r = currentRoom();
  if (!r) return;
  if (!$('composer').value.trim()) return stopTyping();
  const now = Date.now();
  if (now - typingSentAt >= 3000 && socket.send({ type: 'typing', room: r.id, on: true })) typingSentAt = now;
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, 5000);
}

function stopTyping() {
  clearTimeout(typingIdle);
  if (typingSentAt && state.current != null) socket.send({ type: 'typing', room: state.current, on: false });
  typingSentAt = 0;
}

function setTyper(user, on) {
  const t = typers.get(user.id);
  if (t) { clearTimeout(t.timer); typers.delete(user.id); }
  if (on) typers.set(user.id, { name: user.username, timer: setTimeout(() => setTyper(user, false), 8000) });
  if (on || t) renderTyping();
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

function autosize() {
  const box = $('composer');
  box.style.height = 'auto';
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
}

// ---- notifications ------------------------------------------------------------
function showNotifyButton() {
  $('notify').hidden = !('Notification' in window) || Notification.permission !== 'default';
}

function notify(r, m) {
  if (!('Notification' in window) || Notification.permission !== 'granted' || !document.hidden) return;
  const n = new Notification(`${m.from?.username ?? 'Someone'} in ${r.name}`, { body: (m.body ?? '').slice(0, 200), tag: `room-${r.id}` });
  n.addEventListener('click', () => { window.focus(); selectRoom(r.id); n.close(); });
}

// ---- errors and layout --------------------------------------------------------
function apiFailed(e, inline) {
  if (e.status === 401) return sessionLost();
  if (inline || e.status === 0) showText('compose-error', humanError(e.code, e.message));
}

function openDrawer() {
  $('app').classList.add('drawer-open');
  $('scrim').hidden = false;
  $('open-drawer').setAttribute('aria-expanded', 'true');
  $('room-filter').focus();
}

function closeDrawer() {
  if (!$('app').classList.contains('drawer-open')) return;
  $('app').classList.remove('drawer-open');
  $('scrim').hidden = true;
  $('open-drawer').setAttribute('aria-expanded', 'false');
}

// ---- wiring -------------------------------------------------------------------
$('tab-password').addEventListener('click', () => pickTab(false));
$('tab-email').addEventListener('click', () => pickTab(true));
$('password-form').addEventListener('submit', (e) => { e.preventDefault(); passwordAuth('login'); });
$('register').addEventListener('click', () => passwordAuth('register'));
$('email-form').addEventListener('submit', (e) => { e.preventDefault(); emailAuth(); });
$('logout').addEventListener('click', logout);
$('room-filter').addEventListener('input', renderRooms);
$('open-drawer').addEventListener('click', openDrawer);
$('scrim').addEventListener('click', closeDrawer);
$('jump').addEventListener('click', () => { view.scrollToBottom(); markRead(); });
$('reply-cancel').addEventListener('click', () => { clearReply(); $('composer').focus(); });
$('notify').addEventListener('click', async () => { await Notification.requestPermission(); showNotifyButton(); });
$('scroller').addEventListener('scroll', markRead, { passive: true });
wireRoomDialog(async (room) => {
  state.rooms.set(room.id, roomFrom({ ...room, member: true }));
  await loadRooms();
  selectRoom(room.id);
});
wireInfo(currentRoom);

$('compose').addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
$('composer').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
  if (e.key === 'Escape' && state.replyTo) { e.preventDefault(); clearReply(); }
});
$('composer').addEventListener('input', onComposerInput);
$('composer').addEventListener('blur', stopTyping);
document.addEventListener('keydown', (e) => {
  if (e.key !== 'Escape') return;
  if ($('app').classList.contains('drawer-open')) { closeDrawer(); $('open-drawer').focus(); }
  else if (infoOpen()) { hideInfo(); $('open-info').focus(); }
});
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState !== 'visible' || !state.me) return;
  markRead();
  loadRooms(); // rooms others created or added us to meanwhile
});
window.addEventListener('online', () => socket.nudge());

// ---- boot: already signed in (cookie)? ------------------------------------------
if (hasSessionHint()) {
  api('GET', '/api/me').then((data) => startApp(data.user)).catch((e) => {
    if (e.status === 401) setSessionHint(false);
    showAuth(e.status === 401 ? '' : humanError(e.code, e.message));
  });
} else showAuth('');
