// @ts-check
// typing.js — who is typing in the open room ("alice is typing…"), each shown until they stop,
// send, go offline, or 8 s pass.

import { $ } from '../../core/dom.js';

/** user id -> {name, timer} */
const typers = new Map();

/**
 * @param {import('../../core/types.js').User} user
 * @param {boolean} on
 */
export function setTyper(user, on) {
  const t = typers.get(user.id);
  if (t) { clearTimeout(t.timer); typers.delete(user.id); }
  if (on) typers.set(user.id, { name: user.username, timer: setTimeout(() => setTyper(user, false), 8000) });
  if (on || t) renderTyping();
}

export function clearTypers() {
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
