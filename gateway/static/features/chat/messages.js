// @ts-check
// messages.js — the open room's message list: the newest page first, older pages as the user
// scrolls up (keeping the scroll position), sorted by seq and never showing one twice; messages
// from one sender in a row grouped under one header; the "new messages" divider at the read
// cursor; reply quotes; the room's other events (edits and deletes applied to their message,
// system events as quiet lines); the reader's place in each room kept across reloads; and which
// seq the user has read; a blocked user's messages collapsed (blocked.js). A message's files show
// as the files feature draws them (`provideAttachmentsView`).
//
// A history page comes with its messages' latest edits folded in; a live `edited` or `deleted`
// changes the message it names, or, when that message is not shown yet (its page is loading or
// older), waits in `byRoom.changes` until it is.
//
// Opened at a message (a search result: `around=SEQ`), the list is a window of the room's middle
// (`hasNewer`): newer pages load as the user scrolls down, and live events wait in
// `byRoom.buffered` until the window reaches the room's newest event, so the list never has a
// hole. None of this moves the room's resume cursor (`Room.seen`, the rooms feature's): it stays
// the newest seq the socket received, whatever the list shows.

import { $, el, linkify, stamp, fullDate } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { isMe, store } from '../../core/store.js';
import { isBlocked, nameButton } from '../../core/people.js';
import { collapsedBody, blockedQuote } from './blocked.js';
import { systemText } from './system.js';
import { withMentions, mentionsMe } from './mentions.js';

/** @typedef {import('../../core/types.js').Message} Message */
/** @typedef {import('../../core/types.js').Room} Room */
/** @typedef {import('../../core/types.js').Frame} Frame */
/**
 * What a message's buttons do (the open room's chat feature provides them).
 * @typedef {{reply: (m: Message) => void, edit: (li: HTMLElement, m: Message) => void,
 *   remove: (m: Message) => void}} MessageActions
 */
/** A change that came live for a message not shown yet. @typedef {{body?: string, deleted?: boolean, ts: number}} Change */

const PAGE = 50;
/** Messages of one sender less than this apart share one header. */
const GROUP_GAP_MS = 5 * 60 * 1000;
/** Where the reader was in a room (localStorage, per room): `{seq, offset}` of the top message. */
const PLACE = 'confab.place.';
/** Older pages loaded at most to reach a kept place. */
const PLACE_MAX_PAGES = 20;

/**
 * Draws a message's files (the files feature provides it; without it they are not shown).
 * @type {(m: Partial<Message>) => Node | null}
 */
let attachmentsView = () => null;
/** @param {(m: Partial<Message>) => Node | null} view */
export function provideAttachmentsView(view) { attachmentsView = view; }

/**
 * Reports another's message (the moderation feature provides it; without it there is no button).
 * @type {((m: Message) => void) | null}
 */
let reportAction = null;
/** @param {(m: Message) => void} run */
export function provideReportAction(run) { reportAction = run; }

/** @type {HTMLElement} */ let scroller;
/** @type {HTMLElement} */ let list;
const byRoom = {
  /** @type {number | null} */ id: null,
  /** @type {Map<number, Message>} */ msgs: new Map(),
  /** Every seq shown or applied: messages, edits, deletes, system events. @type {Set<number>} */ seqs: new Set(),
  maxSeq: 0,
  /** target seq -> its latest live change, for messages not shown yet. @type {Map<number, Change>} */ changes: new Map(),
  minSeq: 0,
  hasMore: false,
  loading: false,
  restoring: false, // going back to a kept place: scrolling neither loads nor saves meanwhile
  token: 0,
  /** @type {number | null} */ dividerAt: null,
  /** @type {MessageActions} */ actions: { reply: () => {}, edit: () => {}, remove: () => {} },
  /** The user may delete anyone's message here (the room's owner, a moderator, an admin). */
  moderates: false,
  /** The list ends before the room's newest event (opened at a message). */
  hasNewer: false,
  /** The highest seq a history page gave: where the next newer page starts. */
  newest: 0,
  /** Live frames that came while `hasNewer`, shown once the list reaches them. @type {Frame[]} */
  buffered: [],
  /** Messages of blocked users the reader chose to show. @type {Set<number>} */
  revealed: new Set(),
  /** The sends not yet answered, shown after the newest message. @type {() => HTMLElement[]} */
  pending: () => [],
};

export const nearBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
export const scrollToBottom = () => { scroller.scrollTop = scroller.scrollHeight; $('jump').hidden = true; };

/**
 * Shows `room`: clears the list, loads the newest page and goes back to the reader's place in
 * it (or to the first unread message, or to the bottom). With `at`, loads the events around
 * message `at` instead and shows it, highlighted, in the middle.
 * @param {Room} room
 * @param {{actions: MessageActions, moderates: boolean, pending: () => HTMLElement[]}} opts
 * @param {number | null} [at]
 */
export async function openRoom(room, { actions, moderates, pending }, at = null) {
  Object.assign(byRoom, {
    id: room.id, msgs: new Map(), seqs: new Set(), changes: new Map(), minSeq: 0, maxSeq: 0, hasMore: false, loading: true,
    token: byRoom.token + 1, dividerAt: room.member ? room.read_seq ?? null : null, actions, moderates,
    hasNewer: false, newest: 0, buffered: [], revealed: new Set(), pending,
  });
  const token = byRoom.token;
  list.replaceChildren();
  $('empty').hidden = true;
  $('jump').hidden = true;
  $('jump').textContent = at == null ? 'New messages ↓' : 'Newest messages ↓';
  $('older').textContent = 'Loading…';
  let data;
  try {
    data = await api('GET', `/api/rooms/${room.id}/messages?${at == null ? '' : `around=${at}&`}limit=${PAGE}`);
  } catch (e) {
    if (token === byRoom.token) { $('older').textContent = ''; byRoom.loading = false; }
    throw e;
  }
  if (token !== byRoom.token) return;
  byRoom.hasMore = !!data.has_more;
  byRoom.hasNewer = at != null && !!data.has_more_after;
  insertPage(room.id, data);
  if (!byRoom.hasNewer) list.append(...pending());
  regroup();
  const divider = placeDivider();
  byRoom.loading = false;
  if (at != null) {
    showFound(at);
  } else {
    byRoom.restoring = true;
    const kept = await restorePlace(token).finally(() => { if (token === byRoom.token) byRoom.restoring = false; });
    if (token !== byRoom.token) return;
    if (!kept) {
      if (divider) divider.scrollIntoView({ block: 'center' });
      else { byRoom.dividerAt = null; scrollToBottom(); } // all read: later messages get one only if unseen
    }
  }
  olderStatus();
  $('empty').hidden = list.childElementCount > 0;
  fillScreen();
}

/** Marks the message (or line) `seq` as the one looked for and puts it in the middle. @param {number} seq */
function showFound(seq) {
  for (const li of list.querySelectorAll('.found')) li.classList.remove('found');
  const li = /** @type {HTMLElement | null} */ (list.querySelector(`:scope > [data-seq="${seq}"]`));
  if (!li) return;
  li.classList.add('found');
  li.scrollIntoView({ block: 'center' });
  $('jump').hidden = !byRoom.hasNewer && nearBottom();
}

/** Whether the list ends before the room's newest event (it was opened at a message). */
export const detached = () => byRoom.hasNewer;

/** Back to the room's newest messages, as when it opens (the sends not yet answered included). */
export function toPresent() {
  const room = byRoom.id == null ? null : store.state.rooms.get(byRoom.id);
  if (!room) return Promise.resolve();
  return openRoom(room, { actions: byRoom.actions, moderates: byRoom.moderates, pending: byRoom.pending });
}

/** More pages, older then newer, until the list overflows the screen (or the room has no more). */
async function fillScreen() {
  while ((byRoom.hasMore || byRoom.hasNewer) && scroller.scrollHeight <= scroller.clientHeight + 40) {
    if (!(byRoom.hasMore ? await loadOlder() : await loadNewer())) break;
  }
}

/**
 * Loads the page after the newest shown event (the list was opened at a message). Once it
 * reaches the room's newest event, the live events that came meanwhile and the pending sends
 * follow, and the list is live again.
 */
async function loadNewer() {
  if (byRoom.loading || !byRoom.hasNewer) return false;
  byRoom.loading = true;
  const token = byRoom.token, id = byRoom.id, after = byRoom.newest;
  try {
    const data = await api('GET', `/api/rooms/${id}/messages?after=${after}&limit=${PAGE}`);
    if (token !== byRoom.token) return false;
    insertPage(id, data);
    // The range was (after, after + PAGE]: a shorter page ended at the room's head.
    const room = store.state.rooms.get(id);
    byRoom.hasNewer = typeof data.has_more_after === 'boolean' ? data.has_more_after : byRoom.newest >= after + PAGE;
    if (room?.joined && byRoom.newest >= (room.head_seq || 0)) byRoom.hasNewer = false;
    if (!byRoom.hasNewer) caughtUp();
    regroup();
    placeDivider();
    return true;
  } catch {
    return false;
  } finally {
    if (token === byRoom.token) byRoom.loading = false;
  }
}

/** The list reached the room's newest event: what came live meanwhile, then the pending sends. */
function caughtUp() {
  const frames = byRoom.buffered;
  byRoom.buffered = [];
  for (const f of frames) {
    if (f.type === 'message') insert(/** @type {Message} */ (/** @type {unknown} */ (f)));
    else applyEvent(f);
  }
  list.append(...byRoom.pending());
  $('jump').hidden = nearBottom();
  $('jump').textContent = 'New messages ↓';
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
    insertPage(id, data);
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

/**
 * A page of history: its messages (edits folded in) and its system events as lines; its edits
 * and deletes are already folded into the messages they name.
 * @param {number} room
 * @param {{messages?: Message[], events?: Frame[]}} data
 */
function insertPage(room, data) {
  for (const m of data.messages || []) { insert({ room, ...m }); byRoom.newest = Math.max(byRoom.newest, m.seq); }
  for (const e of data.events || []) {
    if (e.type === 'system') insertSystem({ ...e, room });
    else know(e.seq);
    byRoom.newest = Math.max(byRoom.newest, e.seq);
  }
}

function olderStatus() {
  $('older').textContent = byRoom.hasMore ? '' : (byRoom.seqs.size ? 'This is the start of the room.' : '');
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
    if (byRoom.hasNewer && scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 300) loadNewer();
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
  if (byRoom.hasNewer) { // the list does not reach it yet: shown when it does
    byRoom.buffered.push(/** @type {Frame} */ ({ type: 'message', ...m }));
    $('jump').hidden = false;
    return false;
  }
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
 * A live `edited`, `deleted` or `system` frame of the open room.
 * @param {Frame} f
 */
export function addEvent(f) {
  if (f.room !== byRoom.id || byRoom.seqs.has(f.seq)) return;
  if (byRoom.hasNewer) {
    byRoom.buffered.push(f);
    if (f.type !== 'system' && byRoom.msgs.has(f.target)) applyChange(f); // a shown message changes at once
    return;
  }
  applyEvent(f);
}

/**
 * A live event, shown or applied.
 * @param {Frame} f
 */
function applyEvent(f) {
  if (byRoom.seqs.has(f.seq)) return;
  if (f.type === 'system') {
    const atBottom = nearBottom();
    if (!insertSystem(f)) return;
    regroup();
    olderStatus();
    $('empty').hidden = true;
    if (atBottom) scrollToBottom();
    return;
  }
  know(f.seq);
  applyChange(f);
}

/**
 * An `edited` or `deleted` frame's change to its message, or kept until that message shows.
 * @param {Frame} f
 */
function applyChange(f) {
  const ts = new Date(f.ts).getTime();
  /** @type {Change} */
  const change = f.type === 'deleted' ? { deleted: true, ts } : { body: f.body, ts };
  const m = byRoom.msgs.get(f.target);
  if (!m) {
    const kept = byRoom.changes.get(f.target);
    if (!kept?.deleted) byRoom.changes.set(f.target, change);
    return;
  }
  if (m.deleted) return;
  if (change.deleted) Object.assign(m, { deleted: true, body: '', edited: false, edited_at: null });
  else Object.assign(m, { body: change.body, edited: true, edited_at: f.ts });
  rerender(m);
}

/**
 * Shows `m` again after it changed (an edit, a delete), and every quote of it.
 * @param {Message} m
 */
export function rerender(m) {
  const li = /** @type {HTMLElement | null} */ (list.querySelector(`:scope > .msg[data-seq="${m.seq}"]`));
  if (li && !li.classList.contains('editing')) {
    const fresh = render(m);
    fresh.classList.toggle('cont', li.classList.contains('cont'));
    fresh.classList.toggle('found', li.classList.contains('found'));
    li.replaceWith(fresh);
  }
  for (const q of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(`.quote[data-seq="${m.seq}"]`))) fillQuote(q, m);
}

/**
 * Shows the body an edit of ours is saving on message `seq`, marked as being saved.
 * @param {number} seq
 * @param {string} body
 */
export function showSaving(seq, body) {
  const m = byRoom.msgs.get(seq), li = list.querySelector(`:scope > .msg[data-seq="${seq}"]`);
  if (!m || !li) return;
  const fresh = render({ ...m, body, edited: true, edited_at: null });
  fresh.classList.add('saving');
  fresh.classList.toggle('cont', li.classList.contains('cont'));
  /** @type {HTMLElement} */ (fresh.querySelector('.edited')).textContent = 'saving…';
  li.replaceWith(fresh);
}

/** Shows every message again: who is blocked changed. */
export function rerenderAll() {
  for (const m of byRoom.msgs.values()) rerender(m);
  regroup();
}

/** The shown message `seq` of the open room, if it is shown. @param {number} seq */
export const shownMessage = (seq) => byRoom.msgs.get(seq);

/**
 * Whether the user may delete anyone's message in the open room changed (the room's owner).
 * @param {boolean} moderates
 */
export function setModerates(moderates) {
  if (byRoom.moderates === moderates) return;
  byRoom.moderates = moderates;
  for (const b of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(':scope > .msg:not(.own) .act-delete'))) b.hidden = !moderates;
}

/**
 * Appends a message being sent (no seq yet) at the bottom.
 * @param {HTMLElement} li
 */
export function addPending(li) {
  if (byRoom.hasNewer) { toPresent(); return; } // a send goes at the end: back to the newest messages
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

/** Remembers that event `seq` is shown or applied. @param {number} seq */
function know(seq) {
  if (typeof seq !== 'number') return;
  byRoom.seqs.add(seq);
  byRoom.minSeq = byRoom.minSeq ? Math.min(byRoom.minSeq, seq) : seq;
  byRoom.maxSeq = Math.max(byRoom.maxSeq, seq);
}

/**
 * Keeps the list sorted by seq; pending sends (no data-seq) always stay last.
 * @param {Message} m
 */
function insert(m) {
  if (typeof m.seq !== 'number' || byRoom.seqs.has(m.seq)) return false;
  const change = byRoom.changes.get(m.seq);
  if (change) { // it changed while its page was on the way
    byRoom.changes.delete(m.seq);
    if (change.deleted) Object.assign(m, { deleted: true, body: '', edited: false, edited_at: null });
    else if (!m.deleted && change.ts >= new Date(m.edited_at || 0).getTime()) Object.assign(m, { body: change.body, edited: true, edited_at: change.ts });
  }
  know(m.seq);
  byRoom.msgs.set(m.seq, m);
  place(render(m), m.seq);
  for (const q of /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(`.quote[data-seq="${m.seq}"]`))) fillQuote(q, m);
  return true;
}

/**
 * A system event as a quiet line in its place.
 * @param {Frame} f
 */
function insertSystem(f) {
  if (typeof f.seq !== 'number' || byRoom.seqs.has(f.seq)) return false;
  know(f.seq);
  const li = el('li', 'event');
  li.dataset.seq = String(f.seq);
  li.setAttribute('role', 'note');
  li.append(el('span', null, systemText(f)));
  if (f.ts) li.title = fullDate(f.ts);
  place(li, f.seq);
  return true;
}

/**
 * Puts `li` (event `seq`) before the first shown event with a higher seq and before the
 * pending sends.
 * @param {HTMLElement} li
 * @param {number} seq
 */
function place(li, seq) {
  /** @type {HTMLElement | null} */
  let next = null, node = /** @type {HTMLElement | null} */ (list.lastElementChild);
  while (node && (node.dataset.seq === undefined || Number(node.dataset.seq) > seq)) {
    next = node;
    node = /** @type {HTMLElement | null} */ (node.previousElementSibling);
  }
  list.insertBefore(li, next);
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
  const hidden = !own && !!m.from && m.seq != null && isBlocked(m.from.id) && !byRoom.revealed.has(m.seq);
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
  if (hidden) meta.append(el('span', 'from', 'Blocked user'), time);
  else meta.append(m.from ? nameButton(m.from, 'from', own ? 'You' : m.from.username) : el('span', 'from', 'unknown'), time);
  bubble.append(meta);
  if (hidden) { // collapsed until the reader asks to see it
    li.classList.add('blocked-msg');
    bubble.append(collapsedBody(m, () => { byRoom.revealed.add(/** @type {number} */ (m.seq)); rerender(/** @type {Message} */ (m)); regroup(); }));
    li.append(bubble);
    return li;
  }
  if (m.reply_to != null && !m.deleted) bubble.append(quote(m.reply_to));
  const body = el('div', 'body');
  if (m.deleted) { li.classList.add('tombstone'); body.classList.add('deleted'); body.textContent = 'This message was deleted.'; }
  else {
    body.append(linkify(m.body ?? '', withMentions));
    if (!own && mentionsMe(m.body ?? '')) li.classList.add('mentions-me');
  }
  bubble.append(body);
  if (m.attachments?.length && !m.deleted) {
    const files = attachmentsView(m);
    if (files) bubble.append(files);
    body.hidden = !m.body;
  }
  if (m.edited && !m.deleted) { // below the body: a message in a sender's run shows no header
    const mark = el('span', 'edited', 'edited');
    if (m.edited_at) mark.title = `Edited ${fullDate(m.edited_at)}`;
    bubble.append(mark);
  }
  li.append(bubble);
  if (m.seq != null && !m.deleted) {
    const msg = /** @type {Message} */ (m);
    const acts = el('div', 'msg-acts');
    acts.append(action('reply-btn', '↩', `Reply to ${m.from?.username ?? 'this message'}`, () => byRoom.actions.reply(msg)));
    if (own) acts.append(action('act-edit', '✎', 'Edit your message', () => byRoom.actions.edit(li, msg)));
    const del = action('act-delete', '🗑', own ? 'Delete your message' : `Delete ${m.from?.username ?? 'this'}'s message`, () => byRoom.actions.remove(msg));
    del.hidden = !own && !byRoom.moderates;
    acts.append(del);
    const report = reportAction;
    if (!own && report) acts.append(action('act-report', '⚑', `Report ${m.from?.username ?? 'this'}'s message`, () => report(msg)));
    li.append(acts);
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

/**
 * One of a message's buttons.
 * @param {string} cls
 * @param {string} icon
 * @param {string} label
 * @param {() => void} run
 */
function action(cls, icon, label, run) {
  const btn = /** @type {HTMLButtonElement} */ (el('button', `msg-act ${cls}`, icon));
  btn.type = 'button';
  btn.title = label;
  btn.setAttribute('aria-label', label);
  btn.addEventListener('click', run);
  return btn;
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
  if (m.from && !isMe(m.from) && isBlocked(m.from.id) && !byRoom.revealed.has(m.seq)) return blockedQuote(q);
  /** @type {HTMLElement} */ (q.querySelector('.q-from')).textContent = m.from?.username ?? 'unknown';
  /** @type {HTMLElement} */ (q.querySelector('.q-body')).textContent = m.deleted ? 'This message was deleted.' : quotedText(m).slice(0, 140);
  q.classList.toggle('deleted', !!m.deleted);
  q.setAttribute('aria-label', m.deleted
    ? `Reply to a message of ${m.from?.username ?? 'someone'} that was deleted. Show where it was`
    : `Reply to ${m.from?.username ?? 'a message'}: ${quotedText(m).slice(0, 60)}. Show it`);
}

/** A message's text in a quote: its body, or the names of its files. @param {Message} m */
export const quotedText = (m) => m.body || (m.attachments ?? []).map((a) => (a.kind === 'voice' ? 'Voice note' : a.name)).join(', ');

const fetching = new Set();
/** @param {number} room @param {number} seq */
async function fetchQuoted(room, seq) {
  const key = `${room}:${seq}`;
  if (fetching.has(key)) return;
  fetching.add(key);
  try {
    const data = await api('GET', `/api/rooms/${room}/messages?after=${seq - 1}&limit=1`);
    const m = (data.messages || []).find((/** @type {Message} */ x) => x.seq === seq);
    const change = m && room === byRoom.id ? byRoom.changes.get(seq) : null;
    if (m && change?.deleted) Object.assign(m, { deleted: true, body: '' });
    else if (m && change && !m.deleted) m.body = change.body;
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

/**
 * The highest seq the user can see on screen now (0 when none): the last message or line in
 * view, or the room's last event (an edit, a delete) when that is in view.
 */
export function readableSeq() {
  if (document.visibilityState !== 'visible') return 0;
  const bottom = scroller.getBoundingClientRect().bottom;
  const items = /** @type {NodeListOf<HTMLElement>} */ (list.querySelectorAll(':scope > [data-seq]'));
  for (let i = items.length - 1; i >= 0; i--) {
    if (items[i].getBoundingClientRect().top < bottom - 8) {
      const seq = Number(items[i].dataset.seq);
      // Edits and deletes after the last shown line have no line of their own.
      if (i === items.length - 1) return Math.max(seq, byRoom.maxSeq);
      return seq;
    }
  }
  return 0;
}

export const shownRoom = () => byRoom.id;
export function clear() { byRoom.id = null; byRoom.msgs = new Map(); byRoom.seqs = new Set(); byRoom.maxSeq = 0; byRoom.changes = new Map(); byRoom.token++; byRoom.restoring = false; list.replaceChildren(); $('older').textContent = ''; }
