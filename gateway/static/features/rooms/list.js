// @ts-check
// list.js — the sidebar's room list: sorted by latest activity, unread counts and a separate
// mention badge (`@`), the last message, a filter. It renders from the store whenever `rooms` or
// `current` change.

import { $, field, el, shortTime } from '../../core/dom.js';
import { store, isMe, selectRoom } from '../../core/store.js';

/** @typedef {import('../../core/types.js').Room} Room */

/** Rooms sorted by latest activity, then name, filtered by the search box. */
export function renderRoomList() {
  const { rooms, current } = store.state;
  const q = field('room-filter').value.trim().toLowerCase();
  const shown = [...rooms.values()]
    .filter((r) => !q || r.name.toLowerCase().includes(q) || (r.description || '').toLowerCase().includes(q))
    .sort((a, b) => time(b) - time(a) || a.name.localeCompare(b.name));
  // Re-rendering must not take the keyboard focus away from the list.
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const focused = active && $('rooms').contains(active) ? active.dataset.roomId : null;
  $('rooms').replaceChildren(...shown.map((r) => roomItem(r, current)));
  if (focused) /** @type {HTMLElement | null} */ ($('rooms').querySelector(`[data-room-id="${focused}"]`))?.focus();
  $('rooms-empty').hidden = shown.length > 0 || !q;
  let total = 0;
  for (const r of rooms.values()) if (r.member) total += r.unread || 0;
  document.title = total ? `(${total}) Confab` : 'Confab';
}

/** @param {Room} r */
const time = (r) => new Date(r.last?.ts || r.created_at || 0).getTime();

/** @param {Room} r @param {number | null} current */
function roomItem(r, current) {
  const li = el('li');
  const b = /** @type {HTMLButtonElement} */ (el('button', r.id === current ? 'room active' : 'room'));
  b.type = 'button';
  b.dataset.roomId = String(r.id);
  if (r.id === current) b.setAttribute('aria-current', 'true');
  const top = el('span', 'room-top');
  top.append(el('span', 'room-name', r.name));
  if (r.visibility === 'private') top.append(el('span', 'tag', 'private'));
  if (r.last?.ts) top.append(el('time', 'room-time', shortTime(r.last.ts)));
  const bottom = el('span', 'room-bottom');
  const preview = r.last
    ? `${isMe(r.last.from) ? 'You' : r.last.from?.username ?? ''}: ${r.last.deleted ? 'deleted message' : r.last.body}`
    : (r.description || (r.member ? 'No messages yet' : 'Public room: open to join'));
  bottom.append(el('span', 'room-last', preview.slice(0, 120)));
  const unread = r.member && r.id !== current ? r.unread || 0 : 0;
  const mentions = r.member && r.id !== current ? r.mentions || 0 : 0;
  if (unread) bottom.append(el('span', 'badge unread-badge', unread > 99 ? '99+' : unread));
  else if (!r.member) bottom.append(el('span', 'tag', 'join'));
  if (mentions) {
    const at = el('span', 'badge mention-badge', '@');
    at.title = mentions === 1 ? 'You were mentioned' : `You were mentioned ${mentions} times`;
    bottom.append(at);
  }
  b.append(top, bottom);
  const says = [r.name];
  if (r.visibility === 'private') says.push('private');
  if (unread) says.push(`${unread} unread`);
  if (mentions) says.push(mentions === 1 ? 'you were mentioned' : `${mentions} mentions of you`);
  if (!r.member) says.push('not joined');
  b.setAttribute('aria-label', says.join(', '));
  b.addEventListener('click', () => selectRoom(r.id));
  li.append(b);
  return li;
}
