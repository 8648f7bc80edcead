// @ts-check
// chat — the open room: its header (name, who is online, the connection; a direct message's
// people, online or last seen, their names opening their profiles), the message list, the
// composer, editing and deleting messages, typing, and the read cursor. It follows the store's
// `current` room (and `target`: a message to open it at) and handles the frames that change what
// the open room shows.

import { $, el, showText, humanError, fullDate } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { onFrame } from '../../core/frames.js';
import { socket, sessionLost } from '../../core/session.js';
import { beforeLeave } from '../../core/membership.js';
import { store, currentRoom, isMe, roomTitle, dmOthers, personName } from '../../core/store.js';
import { nameButton, onlineState } from '../../core/people.js';
import * as view from './messages.js';
import { wireComposer, onAck, onError, resend, pendingIn, startReply, clearReply, clearPending, stopTyping } from './compose.js';
import { startEdit, confirmDelete, moderates, onChangeAck, onChangeError, resendChanges } from './edit.js';
import { setTyper, clearTypers } from './typing.js';

/** @typedef {import('../../core/types.js').Frame} Frame */

// ---- the room's header ------------------------------------------------------------------
function renderHeader() {
  const r = currentRoom();
  if (r?.kind === 'dm') return renderDmHeader(r);
  $('room-title').textContent = r ? r.name : 'Confab';
  if (!r) { $('room-sub').textContent = ''; return; }
  const parts = [];
  if (r.description) parts.push(r.description);
  if (r.joined) parts.push(`${r.online.size + r.onlineExtra} online`);
  $('room-sub').textContent = parts.join(' · ');
}

/**
 * A direct message's header: its people's names (each opens their profile); under them, for two
 * people, the other's status and whether they are online (or when last seen).
 * @param {import('../../core/types.js').Room} r
 */
function renderDmHeader(r) {
  const others = dmOthers(r);
  const title = $('room-title');
  title.replaceChildren();
  others.forEach((u, i) => {
    if (i) title.append(', ');
    title.append(nameButton(u, 'title-name', personName(u)));
  });
  if (!others.length) title.textContent = roomTitle(r);
  const parts = [];
  if (others.length === 1) {
    const u = others[0], p = store.state.people.get(u.id), online = onlineState(u.id, r);
    if (online) parts.push('online');
    else if (p?.last_seen) parts.push(`last seen ${fullDate(p.last_seen)}`);
    if (p?.status) parts.push(p.status);
  } else {
    parts.push(`${others.length + 1} people`);
    if (r.joined) parts.push(`${r.online.size + r.onlineExtra} online`);
  }
  $('room-sub').replaceChildren(el('span', null, parts.join(' · ')));
}

let bannerTimer = 0;
/** @param {import('../../core/types.js').AppState} s */
function renderStatus({ status }) {
  const text = { connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…', offline: 'Offline' }[status];
  $('status').textContent = text;
  $('status').dataset.state = status;
  clearInterval(bannerTimer);
  if (status === 'online') { $('conn-banner').hidden = true; return; }
  if (status !== 'offline' && status !== 'reconnecting') return;
  clearTypers();
  const tick = () => {
    const secs = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    showText('conn-banner', status === 'offline' && secs > 0
      ? `Disconnected. Reconnecting in ${secs} s… Messages you write will be sent when the connection is back.`
      : 'Disconnected. Reconnecting…');
  };
  tick();
  bannerTimer = setInterval(tick, 1000);
  // The drop may be the login's end, or an expired access cookie that a refresh renews (the
  // socket's upgrade needs a valid one): GET /api/me does the refresh, or says it is over.
  if (status === 'offline') api('GET', '/api/me').catch((e) => { if (e.status === 401) sessionLost(); });
}

// ---- opening a room ---------------------------------------------------------------------
async function openCurrent() {
  const r = currentRoom(), target = store.state.target;
  if (!r) return;
  const at = target?.room === r.id ? target.seq : null;
  if (target) store.state.target = null;
  try {
    const actions = { reply: startReply, edit: startEdit, remove: confirmDelete };
    await view.openRoom(r, { actions, moderates: moderates(r), pending: () => pendingIn(r.id) }, at);
  } catch (e) {
    if (e.status === 401) return sessionLost();
    return showText('compose-error', humanError(e.code, e.message));
  }
  markRead();
}

/**
 * The open room changed (or a message to open it at was asked for): what was on screen in the
 * room left counts as read now.
 */
function roomChanged() {
  const { current, target } = store.state;
  if (current === view.shownRoom()) {
    if (target?.room === current) openCurrent(); // a search result in the open room
    return;
  }
  clearTimeout(readTimer);
  sendRead();
  stopTyping();
  clearReply();
  clearTypers();
  showText('compose-error', '');
  if (current == null) view.clear(); else openCurrent();
}

// ---- reading ----------------------------------------------------------------------------
let readTimer = 0;
function markRead() { clearTimeout(readTimer); readTimer = setTimeout(sendRead, 300); }

/** Tells the server the highest seq on screen in the shown room. */
function sendRead() {
  const id = view.shownRoom(), r = id == null ? null : store.state.rooms.get(id);
  if (!r || !r.joined) return;
  const seq = view.readableSeq();
  if (!seq || seq <= (r.read_seq || 0)) return;
  if (!socket.send({ type: 'read', room: r.id, seq })) return;
  store.update('rooms', () => {
    r.read_seq = seq;
    r.unread = Math.min(r.unread || 0, Math.max(0, (r.head_seq || 0) - seq));
    if (seq >= (r.head_seq || 0)) r.unread = r.mentions = 0; // read to the end: no badge left
  });
}

// ---- frames -----------------------------------------------------------------------------
function registerFrames() {
  onFrame('joined', (f) => {
    resend(f.room); // same cid: deduplicated by the server
    resendChanges(f.room);
    if (f.room === store.state.current) markRead();
  });
  onFrame('message', (m) => {
    const r = store.state.rooms.get(m.room);
    if (!r) return;
    const other = !isMe(m.from);
    if (m.from) setTyper(m.from, false);
    if (r.id === store.state.current && view.shownRoom() === r.id) view.addLive(/** @type {any} */ (m), other);
    markRead();
  });
  for (const type of ['edited', 'deleted', 'system']) {
    onFrame(type, (f) => {
      if (f.room !== store.state.current || view.shownRoom() !== f.room) return;
      view.addEvent(f);
      if (type === 'system') markRead();
    });
  }
  onFrame('ack', (f) => { if (!onChangeAck(f)) onAck(f); });
  onFrame('error', (f) => { if (!onChangeError(f)) onError(f); });
  onFrame('typing', (f) => {
    if (f.room === store.state.current && f.user && !isMe(f.user)) setTyper(f.user, f.on);
  });
  onFrame('presence', (f) => {
    if (f.room === store.state.current && f.user && !f.online) setTyper(f.user, false);
  });
  onFrame('resync', (f) => { // too far behind to replay: show the newest page again
    if (f.room === store.state.current) openCurrent();
  });
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'chat',
  views: new URL('./view.html', import.meta.url),
  start() {
    view.wireMessages();
    wireComposer();
    registerFrames();
    // Switching rooms leaves the one before: what was read there is sent first.
    beforeLeave((r) => { if (view.shownRoom() === r.id) { clearTimeout(readTimer); sendRead(); } });
    store.subscribe(['current', 'rooms', 'presence', 'people'], renderHeader);
    // The room changed hands, or the user's role: who may delete others' messages.
    store.subscribe(['rooms', 'me'], () => { if (view.shownRoom() === store.state.current) view.setModerates(moderates(currentRoom())); });
    store.subscribe('status', renderStatus);
    store.subscribe(['current', 'target'], roomChanged);
    store.subscribe('blocks', () => view.rerenderAll());
    store.subscribe('me', ({ me }) => {
      if (me) return;
      clearPending();
      clearReply();
      clearTypers();
      view.clear();
    });
    $('jump').addEventListener('click', () => {
      if (view.detached()) openCurrent(); // opened at an older message: back to the newest
      else { view.scrollToBottom(); markRead(); }
    });
    $('scroller').addEventListener('scroll', markRead, { passive: true });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && store.state.me) markRead();
    });
    addEventListener('online', () => socket.nudge());
  },
};
