// @ts-check
// list.js — the sidebar's room list: sorted by latest activity, unread counts and a separate
// mention badge (`@`), the last message, a filter. It renders from the store whenever `rooms`,
// `current` or `blocks` change. Direct messages are listed apart (features/dms), with the same
// entries (`roomItem`).

import { $, field, el, shortTime } from '../../core/dom.js';
import { isBlocked } from '../../core/people.js';
import { store, isMe, selectRoom, roomTitle } from '../../core/store.js';

/** @typedef {import('../../core/types.js').Room} Room */

/**
 * The rooms of one list (`dm`: the direct messages, else the rooms), matching the filter box,
 * sorted by latest activity, then name.
 * @param {boolean} dm
 */
export function listed(dm) {
  const q = field('room-filter').value.trim().toLowerCase();
  return [...store.state.rooms.values()]
    .filter((r) => (r.kind === 'dm') === dm)
    .filter((r) => !q || roomTitle(r).toLowerCase().includes(q) || (r.description || '').toLowerCase().includes(q)
      || (dm && (r.members || []).some((m) => m.username.toLowerCase().includes(q))))
    .sort((a, b) => time(b) - time(a) || roomTitle(a).localeCompare(roomTitle(b)));
}

/**
 * Puts `items` in the list `ul`, keeping the keyboard focus on the room it was on.
 * @param {HTMLElement} ul
 * @param {HTMLElement[]} items
 */
export function replaceItems(ul, items) {
  const active = /** @type {HTMLElement | null} */ (document.activeElement);
  const focused = active && ul.contains(active) ? active.dataset.roomId : null;
  ul.replaceChildren(...items);
  if (focused) /** @type {HTMLElement | null} */ (ul.querySelector(`[data-room-id="${focused}"]`))?.focus();
}

/** The rooms (not the direct messages), and the unread total in the tab's title. */
export function renderRoomList() {
  const { rooms, current } = store.state;
  const shown = listed(false);
  replaceItems($('rooms'), shown.map((r) => roomItem(r, current)));
  $('rooms-empty').hidden = shown.length > 0 || !field('room-filter').value.trim();
  let total = 0;
  for (const r of rooms.values()) if (r.member) total += r.unread || 0;
  document.title = total ? `(${total}) Confab` : 'Confab';
}

/** @param {Room} r */
const time = (r) => new Date(r.last?.ts || r.created_at || 0).getTime();

/** @param {Room} r  The last message's preview line (a blocked user's body is not shown). */
function preview(r) {
  if (!r.last) return r.description || (r.member ? 'No messages yet' : 'Public room: open to join');
  const from = r.last.from, who = isMe(from) ? 'You' : from?.username ?? '';
  if (from && !isMe(from) && isBlocked(from.id)) return 'Message from a blocked user';
  if (!r.last.deleted && !r.last.body) return `${who} sent a file`; // a message of files only
  return `${who}: ${r.last.deleted ? 'deleted message' : r.last.body}`;
}

/**
 * One entry of a list: the room's name (a direct message's people), its last message, unread
 * and mention badges; `before` goes ahead of the name (a direct message's online dot).
 * @param {Room} r
 * @param {number | null} current
 * @param {HTMLElement | null} [before]
 */
export function roomItem(r, current, before = null) {
  const li = el('li');
  const b = /** @type {HTMLButtonElement} */ (el('button', r.id === current ? 'room active' : 'room'));
  b.type = 'button';
  b.dataset.roomId = String(r.id);
  if (r.id === current) b.setAttribute('aria-current', 'true');
  const top = el('span', 'room-top');
  const title = roomTitle(r);
  if (before) top.append(before);
  top.append(el('span', 'room-name', title));
  if (r.visibility === 'private' && r.kind !== 'dm') top.append(el('span', 'tag', 'private'));
  if (r.last?.ts) top.append(el('time', 'room-time', shortTime(r.last.ts)));
  const bottom = el('span', 'room-bottom');
  bottom.append(el('span', 'room-last', preview(r).slice(0, 120)));
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
  const says = [title];
  if (r.kind === 'dm') says.push('direct message');
  else if (r.visibility === 'private') says.push('private');
  if (before?.dataset.says) says.push(before.dataset.says);
  if (unread) says.push(`${unread} unread`);
  if (mentions) says.push(mentions === 1 ? 'you were mentioned' : `${mentions} mentions of you`);
  if (!r.member) says.push('not joined');
  b.setAttribute('aria-label', says.join(', '));
  b.addEventListener('click', () => selectRoom(r.id));
  li.append(b);
  return li;
}
