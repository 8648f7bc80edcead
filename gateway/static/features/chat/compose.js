// @ts-check
// compose.js — writing and sending: the composer (Enter sends, Shift+Enter a new line), a
// character counter and the length check before anything is sent, the reply being written, the
// typing signal, and the sends not yet acknowledged (kept with their `cid`, sent again after a
// reconnect, shown as failed with the reason when the server refuses them). Files a send carries
// come from the files feature through `provideAttachments`.

import { $, field, el, showText, newCid, humanError, count } from '../../core/dom.js';
import { dispatch } from '../../core/frames.js';
import { join, keepJoinedWhile, syncJoins } from '../../core/membership.js';
import { socket, sessionLost } from '../../core/session.js';
import { store, currentRoom } from '../../core/store.js';
import * as view from './messages.js';

/** @typedef {import('../../core/types.js').Frame} Frame */
/** @typedef {import('../../core/types.js').Attachment} Attachment */
/** @typedef {{type: 'send', room: number, cid: string, body: string, reply_to: number | null, attachments?: string[]}} SendFrame */

/**
 * What a send takes from the files feature: `ready()` the uploads to attach; `holds()` true when
 * some are still uploading (it calls `sendMessage` again once they are done); `sent()` after a
 * send took them; `restore(files)` gives back the files of a refused send.
 * @typedef {{ready: () => Attachment[], holds: () => boolean, sent: () => void, restore: (files: Attachment[]) => void}} AttachmentSource
 */
/** @type {AttachmentSource} */
let files = { ready: () => [], holds: () => false, sent: () => {}, restore: () => {} };
/** Sends carry the files `source` holds. @param {AttachmentSource} source */
export function provideAttachments(source) { files = source; }

/**
 * cid -> the send, its files and its element: sent, not yet acknowledged; `held` when the room's
 * moderators hold it for review (it is acknowledged once released, never sent again meanwhile).
 * @type {Map<string, {frame: SendFrame, files: Attachment[], el: HTMLElement, held?: boolean, heldAt?: number}>}
 */
const pending = new Map();
/** The message being replied to. @type {{seq: number, name: string, body: string} | null} */
let replyTo = null;

const composer = () => field('composer');
/** @param {string} text */
const length = (text) => [...text.trim()].length;

/** The pending sends' elements of `room`, for the list to show after the history. @param {number} room */
export const pendingIn = (room) => [...pending.values()].filter((p) => p.frame.room === room).map((p) => p.el);

/** Whether a send to `room` waits for its answer. @param {number} room */
const waitsIn = (room) => [...pending.values()].some((p) => p.frame.room === room);
// A room with unanswered sends stays joined after another one opens, until they are answered.
keepJoinedWhile(waitsIn);

/** A send was answered: a room left on screen no longer needs joining once all of its are. @param {number} room */
function answered(room) {
  if (room !== store.state.current && !waitsIn(room)) syncJoins();
}

/** Sends every pending message of `room` again (the same cid: the server answers it once). @param {number} room */
export function resend(room) {
  for (const p of pending.values()) if (p.frame.room === room && !p.held) socket.send(p.frame);
}

/**
 * The room holds our send `cid` for its moderators (pre-moderation): it shows as pending review
 * until released (the normal ack) or rejected (`rejectPending`).
 * @param {string} cid
 */
export function holdPending(cid) {
  const p = pending.get(cid);
  if (!p) return;
  p.held = true;
  p.heldAt = Date.now();
  p.el.classList.add('held');
  /** @type {HTMLElement} */ (p.el.querySelector('.time')).textContent = 'waiting for review';
  answered(p.frame.room);
}

/**
 * A message of ours reached the room: a send with its body held before `before` (the current
 * socket's start) is over, released while an earlier socket was ours (its ack went there). The
 * first such send of the room, if any.
 * @param {number} room
 * @param {string} body
 * @param {number} before
 */
export function settleHeld(room, body, before) {
  for (const [cid, p] of pending) {
    if (!p.heldAt || p.heldAt >= before || p.frame.room !== room || p.frame.body !== body) continue;
    pending.delete(cid);
    view.remove(p.el);
    answered(room);
    return;
  }
}

/** The room's moderators rejected our send `cid`. @param {string} cid @param {string} text */
export function rejectPending(cid, text) {
  const p = pending.get(cid);
  if (!p) return;
  p.el.classList.remove('held');
  p.el.classList.add('rejected');
  failPending(cid, text);
}

/** Sends what the composer holds: its text, and the files attached (none, or once uploaded). */
export function sendMessage() {
  const body = composer().value.trim(), r = currentRoom();
  if (!r || files.holds()) return;
  const attached = files.ready();
  if (!body && !attached.length) return;
  const max = store.state.limits.max_body_chars, n = length(body);
  if (n > max) {
    return showText('compose-error', `This message is ${count(n)} characters long, and the limit is ${count(max)}. Shorten it by ${count(n - max)} and send it again.`);
  }
  showText('compose-error', '');
  /** @type {SendFrame} */
  const frame = { type: 'send', room: r.id, cid: newCid(), body, reply_to: replyTo?.seq ?? null };
  if (attached.length) frame.attachments = attached.map((a) => a.id);
  const node = view.render({ from: store.state.me, body, reply_to: frame.reply_to, attachments: attached });
  node.classList.add('pending');
  /** @type {HTMLElement} */ (node.querySelector('.time')).textContent = 'sending…';
  pending.set(frame.cid, { frame, files: attached, el: node });
  files.sent();
  view.addPending(node);
  if (!(r.joined && socket.send(frame)) && !r.joining) join(r); // sent on `joined`
  composer().value = '';
  onInput();
  clearReply();
  stopTyping();
  composer().focus();
}

/** The server stored our message: it becomes a message like any other. @param {Frame} f */
export function onAck(f) {
  const p = pending.get(f.cid);
  if (!p) return;
  pending.delete(f.cid);
  view.remove(p.el);
  const { body, reply_to } = p.frame, attachments = p.files.length ? p.files : undefined;
  dispatch({ type: 'message', room: f.room, seq: f.seq, id: f.id, from: store.state.me, body, ts: f.ts, reply_to, attachments });
  answered(f.room);
}

/** A refusal: of a send (`ref`), of a join or read (`room`), or of the socket. @param {Frame} f */
export function onError(f) {
  const text = humanError(f.code, f.message);
  const p = f.ref != null ? pending.get(f.ref) : null;
  const again = f.code === 'retry' || f.code === 'overloaded'; // not refused, just not now
  if (p && again) {
    setTimeout(() => { if (pending.has(f.ref)) socket.send(p.frame); }, 300 + Math.random() * 700);
    return;
  }
  if (p) return failPending(f.ref, text);
  if (f.ref != null) return; // a send answered already
  if (f.room != null) {
    if (again) return; // the rooms feature joins again
    for (const [cid, q] of pending) if (q.frame.room === f.room) failPending(cid, text);
    if (f.room === store.state.current) showText('compose-error', text);
    return;
  }
  if (f.code === 'not_authenticated') return sessionLost();
  showText('compose-error', text);
}

/**
 * A refused send is never sent again: it says why on the message, which the user can remove,
 * and its text goes back to the composer to edit.
 * @param {string} cid
 * @param {string} text
 */
function failPending(cid, text) {
  const p = pending.get(cid);
  if (!p) return;
  pending.delete(cid);
  answered(p.frame.room);
  p.el.classList.replace('pending', 'failed');
  /** @type {HTMLElement} */ (p.el.querySelector('.time')).textContent = 'not sent';
  const why = el('div', 'send-error', text);
  const drop = /** @type {HTMLButtonElement} */ (el('button', 'drop-failed', 'Remove'));
  drop.type = 'button';
  drop.setAttribute('aria-label', 'Remove this unsent message');
  drop.addEventListener('click', () => view.remove(p.el));
  why.append(' ', drop);
  /** @type {HTMLElement} */ (p.el.querySelector('.bubble')).append(why);
  if (p.frame.room === store.state.current) {
    showText('compose-error', text);
    if (!composer().value) { composer().value = p.frame.body; onInput(); }
    files.restore(p.files);
  }
}

/** Forgets every pending send (signed out). */
export function clearPending() {
  pending.clear();
}

// ---- replies --------------------------------------------------------------------
/** @param {import('../../core/types.js').Message} m */
export function startReply(m) {
  replyTo = { seq: m.seq, name: m.from?.username ?? 'unknown', body: view.quotedText(m) };
  $('reply-who').textContent = `Replying to ${replyTo.name}:`;
  $('reply-body').textContent = replyTo.body.slice(0, 140);
  $('reply-box').hidden = false;
  composer().focus();
}

export function clearReply() {
  replyTo = null;
  $('reply-box').hidden = true;
}

// ---- the counter and the typing signal ----------------------------------------------------
let typingSentAt = 0, typingIdle = 0;

/** Shows how long the message is once it nears the limit, and marks it when over. */
function renderCounter() {
  const max = store.state.limits.max_body_chars, n = length(composer().value);
  const counter = $('counter');
  counter.hidden = n < max * 0.8;
  counter.textContent = `${count(n)} / ${count(max)}`;
  counter.classList.toggle('over', n > max);
  composer().setAttribute('aria-invalid', String(n > max));
}

function onInput() {
  autosize();
  renderCounter();
  const r = currentRoom();
  if (!r) return;
  if (!composer().value.trim()) return stopTyping();
  const now = Date.now();
  if (now - typingSentAt >= 3000 && socket.send({ type: 'typing', room: r.id, on: true })) typingSentAt = now;
  clearTimeout(typingIdle);
  typingIdle = setTimeout(stopTyping, 5000);
}

export function stopTyping() {
  clearTimeout(typingIdle);
  const current = store.state.current;
  if (typingSentAt && current != null) socket.send({ type: 'typing', room: current, on: false });
  typingSentAt = 0;
}

function autosize() {
  const box = composer();
  box.style.height = 'auto';
  box.style.height = `${Math.min(box.scrollHeight, 160)}px`;
}

export function wireComposer() {
  $('compose').addEventListener('submit', (e) => { e.preventDefault(); sendMessage(); });
  composer().addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); sendMessage(); }
    if (e.key === 'Escape' && replyTo) { e.preventDefault(); clearReply(); }
  });
  composer().addEventListener('input', onInput);
  composer().addEventListener('blur', stopTyping);
  $('reply-cancel').addEventListener('click', () => { clearReply(); composer().focus(); });
  store.subscribe('limits', renderCounter);
}
