// @ts-check
// messages.js — the open room's message list: the newest page first, older pages as the user
// scrolls up (keeping the scroll position), sorted by seq and never showing one twice; messages
// from one sender in a row grouped under one header; the "new messages" divider at the read
// cursor; reply quotes; the reader's place in each room kept across reloads; and which seq the
// user has read.

import { $, el, linkify, stamp, fullDate } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { isMe } from '../../core/store.js';

/** @typedef {import('../../core/types.js').Message} Message */
/** @typedef {import('../../core/types.js').Room} Room */

const PAGE = 50;
/** Messages of one sender less than this apart share one header. */
const GROUP_GAP_MS = 5 * 60 * 1000;
/** Where the reader was in a room (localStorage, per room): `{seq, offset}` of the top message. */
const PLACE = 'confab.place.';
/** Older pages loaded at most to reach a kept place. */
const PLACE_MAX_PAGES = 20;

/** @type {HTMLElement} */ let scroller;
/** @type {HTMLElement} */ let list;
const byRoom = {
  /** @type {number | null} */ id: null,
  /** @type {Map<number, Message>} */ msgs: new Map(),
  minSeq: 0,
  hasMore: false,
  loading: false,
  restoring: false, // going back to a kept place: scrolling neither loads nor saves meanwhile
  token: 0,
  /** @type {number | null} */ dividerAt: null,
  /** @type {(m: Message) => void} */ onReply: () => {},
};

export const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
export const scrollToBottom = () => { scroller.scrollTop = scroller.scrollHeight; $('jump').hidden = true; };

/**
 * Shows `room`: clears the list, loads the newest page and goes back to the reader's place in
 * it (or to the first unread message, or to the bottom).
 * @param {Room} room
 * @param {{onReply: (m: Message) => void, pending: HTMLElement[]}} opts
 */
export async function openRoom(room, { onReply, pending }) {
  Object.assign(byRoom, { id: room.id, msgs: new Map(), minSeq: 0, hasMore: false, loading: true, token: byRoom.token + 1, dividerAt: room.member ? room.read_seq ?? null : null, onReply });
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
  byRoom.hasMore = !!data.has_more;
  for (const m of data.messages || []) insert({ room: room.id, ...m });
  list.append(...pending);
  regroup();
  const divider = placeDivider();
  byRoom.loading = false;
  byRoom.restoring = true;
  const kept = await restorePlace(token).finally(() => { if (token === byRoom.token) byRoom.restoring = false; });
  if (token !== byRoom.token) return;
  if (!kept) {
    if (divider) divider.scrollIntoView({ block: 'center' });
    else { byRoom.dividerAt = null; scrollToBottom(); } // all read: later messages get one only if unseen
  }
  olderStatus();
  $('empty').hidden = list.childElementCount > 0;
  fillScreen();
}

/** Older pages until the list overflows the screen (or the room's start is reached). */
async function fillScreen() {
  while (byRoom.hasMore && scroller.scrollHeight <= scroller.clientHeight + 40) {
    if (!(await loadOlder())) break;
  }
}

/** Loads the page before the oldest shown message; the view stays where the user was. */
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
    regroup();
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

// ---- the reader's place -------------------------------------------------------------
/** The topmost message in view and how far below the scroller's top it starts. */
function topInView() {
  const top = scroller.getBoundingClientRect().top;
  for (const li of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll('.msg[data-seq]'))) {
    const r = li.getBoundingClientRect();
    if (r.bottom > top + 1) return { seq: Number(li.dataset.seq), offset: Math.round(r.top - top) };
  }
  return null;
}

/** Remembers where the reader is in the open room; at the bottom there is nothing to keep. */
function savePlace() {
  if (byRoom.id == null || byRoom.loading || byRoom.restoring) return;
  const key = PLACE + byRoom.id;
  const place = nearBottom() ? null : topInView();
  try { if (place) localStorage.setItem(key, JSON.stringify(place)); else localStorage.removeItem(key); } catch { /* no storage */ }
}

/**
 * Scrolls back to the kept place of the open room, loading older pages to reach it.
 * @param {number} token
 * @returns {Promise<boolean>} whether there was a place to go back to
 */
async function restorePlace(token) {
  let place;
  try { place = JSON.parse(localStorage.getItem(PLACE + byRoom.id) || 'null'); } catch { place = null; }
  if (!place || typeof place.seq !== 'number') return false;
  for (let i = 0; i < PLACE_MAX_PAGES && place.seq < byRoom.minSeq && byRoom.hasMore; i++) {
    if (!(await loadOlder()) || token !== byRoom.token) return false;
  }
  const li = list.querySelector(`.msg[data-seq="${place.seq}"]`);
  if (!li) return false;
  scroller.scrollTop += li.getBoundingClientRect().top - scroller.getBoundingClientRect().top - (place.offset || 0);
  $('jump').hidden = nearBottom();
  return true;
}

let saveTimer = 0;

/** Finds the mounted list and follows its scrolling. */
export function wireMessages() {
  scroller = $('scroller');
  list = $('messages');
  scroller.addEventListener('scroll', () => {
    if (byRoom.restoring) return;
    if (scroller.scrollTop < 300) loadOlder();
    if (nearBottom()) $('jump').hidden = true;
    clearTimeout(saveTimer);
    saveTimer = setTimeout(savePlace, 150);
  }, { passive: true });
  addEventListener('pagehide', savePlace);
}

// ---- live messages ------------------------------------------------------------------
/**
 * A live message of the open room; returns false when it is already shown.
 * @param {Message} m
 * @param {boolean} fromOther
 */
export function addLive(m, fromOther) {
  if (m.room !== byRoom.id) return false;
  const atBottom = nearBottom();
  if (fromOther && byRoom.dividerAt == null && (document.hidden || !atBottom)) byRoom.dividerAt = m.seq - 1;
  if (!insert(m)) return false;
  placeDivider();
  regroup();
  olderStatus();
  $('empty').hidden = true;
  if (atBottom || !fromOther) scrollToBottom(); else $('jump').hidden = false;
  return true;
}

/**
 * Appends a message being sent (no seq yet) at the bottom.
 * @param {HTMLElement} li
 */
export function addPending(li) {
  list.append(li);
  regroup();
  $('empty').hidden = true;
  scrollToBottom();
}

/**
 * Removes a shown element (a pending send that was answered) and regroups its neighbours.
 * @param {HTMLElement} li
 */
export function remove(li) {
  li.remove();
  regroup();
}

/**
 * Keeps the list sorted by seq; pending sends (no data-seq) always stay last.
 * @param {Message} m
 */
function insert(m) {
  if (typeof m.seq !== 'number' || byRoom.msgs.has(m.seq)) return false;
  byRoom.msgs.set(m.seq, m);
  byRoom.minSeq = byRoom.minSeq ? Math.min(byRoom.minSeq, m.seq) : m.seq;
  /** @type {HTMLElement | null} */
  let next = null, node = /** @type {HTMLElement | null} */ (list.lastElementChild);
  while (node && (node.dataset.seq === undefined || Number(node.dataset.seq) > m.seq)) {
    next = node;
    node = /** @type {HTMLElement | null} */ (node.previousElementSibling);
  }
  list.insertBefore(render(m), next);
  for (const q of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(`.quote[data-seq="${m.seq}"]`))) fillQuote(q, m);
  return true;
}

/**
 * A message of one sender right after another of theirs (and within GROUP_GAP_MS, on the same
 * day, with no divider between) continues their group: it shows no header of its own.
 */
function regroup() {
  /** @type {HTMLElement | null} */
  let prev = null;
  for (const li of /** @type {HTMLCollectionOf<HTMLElement>} */ (list.children)) {
    if (!li.classList.contains('msg')) { prev = null; continue; }
    const a = Number(prev?.dataset.ts || Date.now()), b = Number(li.dataset.ts || Date.now());
    const cont = !!prev && !!li.dataset.from && prev.dataset.from === li.dataset.from
      && b - a < GROUP_GAP_MS && new Date(a).toDateString() === new Date(b).toDateString();
    li.classList.toggle('cont', cont);
    prev = li;
  }
}

/**
 * The element of one message (a pending one has no seq).
 * @param {Partial<Message>} m
 */
export function render(m) {
  const own = isMe(m.from);
  const li = el('li', own ? 'msg own' : 'msg');
  if (m.seq != null) li.dataset.seq = String(m.seq);
  if (m.from) li.dataset.from = String(m.from.id);
  const bubble = el('div', 'bubble');
  const meta = el('div', 'meta');
  const time = /** @type {HTMLTimeElement} */ (el('time', 'time', m.ts ? stamp(m.ts) : ''));
  if (m.ts) {
    const when = new Date(m.ts);
    li.dataset.ts = String(when.getTime());
    time.dateTime = when.toISOString();
    time.title = bubble.title = fullDate(when);
  }
  meta.append(el('span', 'from', own ? 'You' : (m.from?.username ?? 'unknown')), time);
  bubble.append(meta);
  if (m.reply_to != null) bubble.append(quote(m.reply_to));
  const body = el('div', 'body');
  if (m.deleted) { body.classList.add('deleted'); body.textContent = 'This message was deleted.'; }
  else body.append(linkify(m.body ?? ''));
  bubble.append(body);
  li.append(bubble);
  if (m.seq != null) {
    const btn = /** @type {HTMLButtonElement} */ (el('button', 'reply-btn', '↩'));
    btn.type = 'button';
    btn.setAttribute('aria-label', `Reply to ${m.from?.username ?? 'this message'}`);
    btn.addEventListener('click', () => byRoom.onReply(/** @type {Message} */ (m)));
    li.append(btn);
    // On a phone the reply action shows only on the message tapped, not on every message.
    bubble.addEventListener('click', (e) => {
      if (/** @type {HTMLElement} */ (e.target).closest('a, button')) return;
      const was = li.classList.contains('picked');
      for (const p of list.querySelectorAll('.msg.picked')) p.classList.remove('picked');
      li.classList.toggle('picked', !was);
    });
  }
  return li;
}

/** @param {number} seq */
function quote(seq) {
  const q = /** @type {HTMLButtonElement} */ (el('button', 'quote'));
  q.type = 'button';
  q.dataset.seq = String(seq);
  q.append(el('span', 'q-from', 'Earlier message'), el('span', 'q-body', '…'));
  q.addEventListener('click', () => {
    const target = list.querySelector(`.msg[data-seq="${seq}"]`);
    if (target) { target.scrollIntoView({ block: 'center' }); target.classList.add('flash'); setTimeout(() => target.classList.remove('flash'), 1200); }
  });
  const known = byRoom.msgs.get(seq);
  if (known) fillQuote(q, known); else if (byRoom.id != null) fetchQuoted(byRoom.id, seq);
  return q;
}

/** @param {HTMLElement} q @param {Message} m */
function fillQuote(q, m) {
  /** @type {HTMLElement} */ (q.querySelector('.q-from')).textContent = m.from?.username ?? 'unknown';
  /** @type {HTMLElement} */ (q.querySelector('.q-body')).textContent = m.deleted ? 'deleted message' : (m.body ?? '').slice(0, 140);
  q.setAttribute('aria-label', `Reply to ${m.from?.username ?? 'a message'}: ${(m.body ?? '').slice(0, 60)}. Show it`);
}

const fetching = new Set();
/** @param {number} room @param {number} seq */
async function fetchQuoted(room, seq) {
  const key = `${room}:${seq}`;
  if (fetching.has(key)) return;
  fetching.add(key);
  try {
    const data = await api('GET', `/api/rooms/${room}/messages?after=${seq - 1}&limit=1`);
    const m = (data.messages || []).find((/** @type {Message} */ x) => x.seq === seq);
    if (m && room === byRoom.id) for (const q of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(`.quote[data-seq="${seq}"]`))) fillQuote(q, m);
  } catch { /* the quote keeps its placeholder */ } finally { fetching.delete(key); }
}

/** The "new messages" divider sits before the first message after the read cursor at opening. */
function placeDivider() {
  list.querySelector('.divider')?.remove();
  if (byRoom.dividerAt == null) return null;
  let first = null;
  for (const li of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll('.msg[data-seq]'))) {
    if (Number(li.dataset.seq) > byRoom.dividerAt && !li.classList.contains('own')) { first = li; break; }
  }
  if (!first) return null;
  const d = el('li', 'divider');
  d.setAttribute('role', 'separator');
  d.append(el('span', null, 'New messages'));
  list.insertBefore(d, first);
  return d;
}

/** The highest seq the user can see on screen now (0 when none). */
export function readableSeq() {
  if (document.visibilityState !== 'visible') return 0;
  const bottom = scroller.getBoundingClientRect().bottom;
  const items = /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll('.msg[data-seq]'));
  for (let i = items.length - 1; i >= 0; i--) {
    if (items[i].getBoundingClientRect().top < bottom - 8) return Number(items[i].dataset.seq);
  }
  return 0;
}

export const shownRoom = () => byRoom.id;
export function clear() { byRoom.id = null; byRoom.token++; byRoom.restoring = false; list.replaceChildren(); $('older').textContent = ''; }
