// messages.js — the open room's message list: newest page first, older pages as the user
// scrolls up (keeping the scroll position), sorted by seq and never showing one twice; the
// "new messages" divider at the read cursor, reply quotes, and which seq the user has read.

import { $, el, linkify, hhmm, dayLabel } from './dom.js';
import { api } from './api.js';
import { state, isMe } from './state.js';

const PAGE = 50;
const scroller = $('scroller'), list = $('messages');
const byRoom = { id: null, msgs: new Map(), minSeq: 0, hasMore: false, loading: false, token: 0, dividerAt: null };

export const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
export const scrollToBottom = () => { scroller.scrollTop = scroller.scrollHeight; $('jump').hidden = true; };

// Shows `room`: clears the list and loads the newest page. `onReply(m)` starts a reply.
export async function openRoom(room, handlers) {
  Object.assign(byRoom, { id: room.id, msgs: new Map(), minSeq: 0, hasMore: false, loading: true, token: byRoom.token + 1, dividerAt: room.member ? room.read_seq : null, handlers });
  const token = byRoom.token;
  list.replaceChildren();
  $('empty').hidden = true;
  $('older').textContent = 'Loading…';
  let data;
  try {
    data = await api('GET', `/api/rooms/${room.id}/messages?limit=${PAGE}`);
  } catch (e) {
    if (token === byRoom.token) { $('older').textContent = ''; byRoom.loading = false; }
    throw e;
  }
  if (token !== byRoom.token) return;
  byRoom.loading = false;
  byRoom.hasMore = !!data.has_more;
  for (const m of data.messages || []) insert({ room: room.id, ...m });
  for (const p of state.pending.values()) if (p.frame.room === room.id) list.append(p.el);
  olderStatus();
  const divider = placeDivider();
  if (divider) divider.scrollIntoView({ block: 'center' });
  else { byRoom.dividerAt = null; scrollToBottom(); } // all read: later messages get one only if unseen
  $('empty').hidden = list.childElementCount > 0;
  fillScreen();
}

// Older pages until the list overflows the screen (or the room's start is reached).
async function fillScreen() {
  while (byRoom.hasMore && scroller.scrollHeight <= scroller.clientHeight + 40) {
    if (!(await loadOlder())) break;
  }
}

// Loads the page before the oldest shown message; the view stays where the user was.
export async function loadOlder() {
  if (byRoom.loading || !byRoom.hasMore || !byRoom.minSeq) return false;
  byRoom.loading = true;
  const token = byRoom.token, id = byRoom.id;
  $('older').textContent = 'Loading older messages…';
  try {
    const data = await api('GET', `/api/rooms/${id}/messages?before=${byRoom.minSeq}&limit=${PAGE}`);
    if (token !== byRoom.token) return false;
    const fromBottom = scroller.scrollHeight - scroller.scrollTop;
    byRoom.hasMore = !!data.has_more;
    for (const m of data.messages || []) insert({ room: id, ...m });
    placeDivider();
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    return true;
  } catch {
    return false;
  } finally {
    if (token === byRoom.token) { byRoom.loading = false; olderStatus(); }
  }
}

function olderStatus() {
  $('older').textContent = byRoom.hasMore ? '' : (byRoom.msgs.size ? 'This is the start of the room.' : '');
}

scroller.addEventListener('scroll', () => {
  if (scroller.scrollTop < 300) loadOlder();
  if (nearBottom()) $('jump').hidden = true;
});

// A live message of the open room; returns false when it is already shown.
export function addLive(m, fromOther) {
  if (m.room !== byRoom.id) return false;
  const atBottom = nearBottom();
  if (fromOther && byRoom.dividerAt == null && (document.hidden || !atBottom)) byRoom.dividerAt = m.seq - 1;
  if (!insert(m)) return false;
  placeDivider();
  olderStatus();
  $('empty').hidden = true;
  if (atBottom || !fromOther) scrollToBottom(); else $('jump').hidden = false;
  return true;
}

// Keeps the list sorted by seq; pending sends (no data-seq) always stay last.
function insert(m) {
  if (typeof m.seq !== 'number' || byRoom.msgs.has(m.seq)) return false;
  byRoom.msgs.set(m.seq, m);
  byRoom.minSeq = byRoom.minSeq ? Math.min(byRoom.minSeq, m.seq) : m.seq;
  let next = null, node = list.lastElementChild;
  while (node && (node.dataset.seq === undefined || Number(node.dataset.seq) > m.seq)) {
    next = node;
    node = node.previousElementSibling;
  }
  list.insertBefore(render(m), next);
  for (const q of list.querySelectorAll(`.quote[data-seq="${m.seq}"]`)) fillQuote(q, m);
  return true;
}

export function render(m) {
  const own = isMe(m.from);
  const li = el('li', own ? 'msg own' : 'msg');
  if (m.seq != null) li.dataset.seq = m.seq;
  const bubble = el('div', 'bubble');
  const meta = el('div', 'meta');
  const time = el('time', 'time', m.ts ? (dayLabel(m.ts) === 'Today' ? hhmm(m.ts) : `${dayLabel(m.ts)} ${hhmm(m.ts)}`) : '');
  if (m.ts) { time.dateTime = new Date(m.ts).toISOString(); time.title = new Date(m.ts).toLocaleString(); }
  meta.append(el('span', 'from', own ? 'You' : (m.from?.username ?? 'unknown')), time);
  bubble.append(meta);
  if (m.reply_to != null) bubble.append(quote(m.reply_to));
  const body = el('div', 'body');
  if (m.deleted) { body.classList.add('deleted'); body.textContent = 'This message was deleted.'; }
  else body.append(linkify(m.body ?? ''));
  bubble.append(body);
  li.append(bubble);
  if (m.seq != null) {
    const btn = el('button', 'reply-btn', '↩');
    btn.type = 'button';
    btn.setAttribute('aria-label', `Reply to ${m.from?.username ?? 'this message'}`);
    btn.addEventListener('click', () => byRoom.handlers?.onReply(m));
    li.append(btn);
  }
  return li;
}

function quote(seq) {
  const q = el('button', 'quote');
  q.type = 'button';
  q.dataset.seq = seq;
  q.append(el('span', 'q-from', 'Earlier message'), el('span', 'q-body', '…'));
  q.addEventListener('click', () => {
    const target = list.querySelector(`.msg[data-seq="${seq}"]`);
    if (target) { target.scrollIntoView({ block: 'center' }); target.classList.add('flash'); setTimeout(() => target.classList.remove('flash'), 1200); }
  });
  const known = byRoom.msgs.get(seq);
  if (known) fillQuote(q, known); else fetchQuoted(byRoom.id, seq);
  return q;
}

function fillQuote(q, m) {
  q.querySelector('.q-from').textContent = m.from?.username ?? 'unknown';
  q.querySelector('.q-body').textContent = m.deleted ? 'deleted message' : (m.body ?? '').slice(0, 140);
  q.setAttribute('aria-label', `Reply to ${m.from?.username ?? 'a message'}: ${(m.body ?? '').slice(0, 60)}. Show it`);
}

const fetching = new Set();
async function fetchQuoted(room, seq) {
  const key = `${room}:${seq}`;
  if (fetching.has(key)) return;
  fetching.add(key);
  try {
    const data = await api('GET', `/api/rooms/${room}/messages?after=${seq - 1}&limit=1`);
    const m = (data.messages || []).find((x) => x.seq === seq);
    if (m && room === byRoom.id) for (const q of list.querySelectorAll(`.quote[data-seq="${seq}"]`)) fillQuote(q, m);
  } catch { /* the quote keeps its placeholder */ } finally { fetching.delete(key); }
}

// The "new messages" divider sits before the first message after the read cursor at opening.
function placeDivider() {
  list.querySelector('.divider')?.remove();
  if (byRoom.dividerAt == null) return null;
  let first = null;
  for (const li of list.querySelectorAll('.msg[data-seq]')) {
    if (Number(li.dataset.seq) > byRoom.dividerAt && !li.classList.contains('own')) { first = li; break; }
  }
  if (!first) return null;
  const d = el('li', 'divider');
  d.setAttribute('role', 'separator');
  d.append(el('span', null, 'New messages'));
  list.insertBefore(d, first);
  return d;
}

// The highest seq the user can see on screen now (0 when none).
export function readableSeq() {
  if (document.visibilityState !== 'visible') return 0;
  const bottom = scroller.getBoundingClientRect().bottom;
  const items = list.querySelectorAll('.msg[data-seq]');
  for (let i = items.length - 1; i >= 0; i--) {
    if (items[i].getBoundingClientRect().top < bottom - 8) return Number(items[i].dataset.seq);
  }
  return 0;
}

export const shownRoom = () => byRoom.id;
export const message = (seq) => byRoom.msgs.get(seq);
export function clear() { byRoom.id = null; byRoom.token++; list.replaceChildren(); $('older').textContent = ''; }
