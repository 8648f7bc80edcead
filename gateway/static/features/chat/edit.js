// @ts-check
// edit.js — changing messages already sent: the inline editor on one's own message (Enter saves,
// Shift+Enter a new line, Escape cancels), and deleting one's own message, or anyone's as the
// room's owner, a moderator or an admin, after a confirmation. Each goes out as an `edit` or
// `delete` frame with a `cid`; the room's `edited`/`deleted` event changes the message for every
// member, this one included. A refusal puts the message back as it was and says why.

import { el, newCid, humanError, count, showText } from '../../core/dom.js';
import { confirmAction } from '../../core/confirm.js';
import { socket } from '../../core/session.js';
import { keepJoinedWhile, syncJoins } from '../../core/membership.js';
import { store, isMe } from '../../core/store.js';
import * as view from './messages.js';

/** @typedef {import('../../core/types.js').Message} Message */
/** @typedef {import('../../core/types.js').Frame} Frame */

/**
 * cid -> the change sent and not yet answered (sent again, with its cid, after a reconnect).
 * @type {Map<string, {room: number, seq: number, kind: 'edit' | 'delete', frame: object}>}
 */
const sent = new Map();

// A room with unanswered changes stays joined after another one opens, until they are answered.
keepJoinedWhile((room) => [...sent.values()].some((c) => c.room === room));

/** A change was answered: its room, if no longer on screen, may be left. @param {number} room */
function answered(room) {
  if (room !== store.state.current) syncJoins();
}

/** Sends the unanswered changes of `room` again (the same cid: the server applies each once). @param {number} room */
export function resendChanges(room) {
  for (const c of sent.values()) if (c.room === room) socket.send(c.frame);
}

/** @param {string} text */
const length = (text) => [...text.trim()].length;

/** The room's owner, a moderator or an admin may delete anyone's message in `room`. @param {import('../../core/types.js').Room | null} room */
export function moderates(room) {
  const me = store.state.me;
  if (!me || !room) return false;
  return me.role === 'admin' || me.role === 'moderator' || (room.owner_id != null && room.owner_id === me.id);
}

/**
 * Opens the inline editor in place of the message's body.
 * @param {HTMLElement} li
 * @param {Message} m
 */
export function startEdit(li, m) {
  if (li.classList.contains('editing') || m.deleted) return;
  for (const other of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('#messages .msg.editing .edit-cancel'))) other.click();
  const body = /** @type {HTMLElement} */ (li.querySelector('.body'));
  const box = /** @type {HTMLTextAreaElement} */ (el('textarea', 'edit-box'));
  box.value = m.body ?? '';
  box.rows = Math.min(8, box.value.split('\n').length + 1);
  box.setAttribute('aria-label', 'Edit your message (Enter saves, Escape cancels)');
  const error = el('p', 'edit-error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  const save = /** @type {HTMLButtonElement} */ (el('button', 'edit-save primary', 'Save'));
  save.type = 'button';
  const cancel = /** @type {HTMLButtonElement} */ (el('button', 'edit-cancel', 'Cancel'));
  cancel.type = 'button';
  const row = el('div', 'edit-row');
  row.append(el('span', 'edit-hint', 'Enter saves · Escape cancels'), cancel, save);
  const form = el('div', 'editor');
  form.append(box, error, row);
  body.hidden = true;
  body.after(form);
  li.classList.add('editing');

  const close = () => {
    li.classList.remove('editing');
    form.remove();
    body.hidden = false;
    const now = view.shownMessage(m.seq);
    if (now) view.rerender(now); // it may have changed meanwhile
  };
  const submit = () => {
    const text = box.value.trim();
    if (text === (m.body ?? '').trim()) return close();
    const problem = check(text);
    if (problem) { error.textContent = problem; error.hidden = false; return; }
    const cid = newCid(), frame = { type: 'edit', room: m.room, seq: m.seq, body: text, cid };
    if (!socket.send(frame)) {
      error.textContent = 'You are offline: the edit was not saved. Try again once the connection is back.';
      error.hidden = false;
      return;
    }
    sent.set(cid, { room: m.room, seq: m.seq, kind: 'edit', frame });
    close();
    view.showSaving(m.seq, text); // until the room's `edited` event (or a refusal) replaces it
  };
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    if (e.key === 'Escape') { e.preventDefault(); e.stopPropagation(); close(); }
  });
  save.addEventListener('click', submit);
  cancel.addEventListener('click', close);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

/** Why `text` cannot be the new body, or ''. @param {string} text */
function check(text) {
  if (!text) return 'A message cannot be empty: delete it instead.';
  const max = store.state.limits.max_body_chars, n = length(text);
  if (n > max) return `This is ${count(n)} characters long, and the limit is ${count(max)}. Shorten it by ${count(n - max)}.`;
  return '';
}

/**
 * Deletes a message after asking.
 * @param {Message} m
 */
export async function confirmDelete(m) {
  const own = isMe(m.from);
  const yes = await confirmAction({
    title: 'Delete this message?',
    text: own
      ? 'It will show as deleted to everyone in the room. This cannot be undone.'
      : `${m.from?.username ?? 'Their'}'s message will show as deleted to everyone in the room. This cannot be undone.`,
    action: 'Delete',
    then: /** @type {HTMLElement} */ (document.getElementById('composer')),
  });
  if (!yes) return;
  const cid = newCid(), frame = { type: 'delete', room: m.room, seq: m.seq, cid };
  if (!socket.send(frame)) {
    showText('compose-error', 'You are offline: the message was not deleted. Try again once the connection is back.');
    return;
  }
  sent.set(cid, { room: m.room, seq: m.seq, kind: 'delete', frame });
}

/** An `ack` of an edit or delete of ours: the event has reached every member. @param {Frame} f */
export function onChangeAck(f) {
  const c = sent.get(f.cid);
  if (!c) return false;
  sent.delete(f.cid);
  document.querySelector(`#messages > .msg[data-seq="${c.seq}"]`)?.classList.remove('saving');
  answered(c.room);
  return true;
}

/**
 * A refused edit or delete: the message stays as it was, and the composer's error line says
 * why. Returns false when `f` is not about one.
 * @param {Frame} f
 */
export function onChangeError(f) {
  const c = f.ref != null ? sent.get(f.ref) : undefined;
  if (!c) return false;
  if (f.code === 'retry' || f.code === 'overloaded') { // not refused, just not now
    setTimeout(() => { if (sent.has(f.ref)) socket.send(c.frame); }, 300 + Math.random() * 700);
    return true;
  }
  sent.delete(f.ref);
  answered(c.room);
  const m = view.shownMessage(c.seq);
  document.querySelector(`#messages > .msg[data-seq="${c.seq}"]`)?.classList.remove('saving');
  if (m && c.room === store.state.current) {
    view.rerender(m);
    const what = c.kind === 'edit' ? 'The edit was not saved' : 'The message was not deleted';
    const why = { gone: 'the message was deleted', not_found: 'there is no such message', forbidden: 'you may not change this message' }[f.code];
    showText('compose-error', why ? `${what}: ${why}.` : `${what}. ${humanError(f.code, f.message)}`);
  }
  return true;
}
