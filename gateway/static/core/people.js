// @ts-check
// people.js — what every feature knows of other people: the profiles met so far (the store's
// `people`: display names, status, online and last seen), the users this user blocked (the
// store's `blocks`, from GET /api/blocks, changed by `setBlocked`), opening a direct message
// with someone (`openDirect`), and the one way to open a person's profile card (`openProfile`,
// which the people feature provides). It renders nothing but a name's button.

import { api } from './api.js';
import { humanError } from './dom.js';
import { store, isMe, roomFrom, selectRoom } from './store.js';

/** @typedef {import('./types.js').User} User */
/** @typedef {import('./types.js').Profile} Profile */

/**
 * Remembers profiles the server gave (a people search, a profile card, a direct message's members).
 * @param {Profile[]} list
 */
export function rememberPeople(list) {
  if (!list.length) return;
  store.update('people', ({ people }) => {
    for (const p of list) people.set(p.id, { ...people.get(p.id), ...p });
  });
}

/** @param {number} id  Whether this user blocked user `id`. */
export const isBlocked = (id) => store.state.blocks.has(id);

/**
 * Whether `id` is known to be online: in the open room's presence, else from their profile.
 * @param {number} id
 * @param {import('./types.js').Room} [room]
 * @returns {boolean | null} null when nothing is known
 */
export function onlineState(id, room) {
  if (room?.joined && room.online.has(id)) return true;
  const p = store.state.people.get(id);
  if (room?.joined && p) return false;
  return p && typeof p.online === 'boolean' ? p.online : null;
}

/** Loads the list of blocked users (after sign-in, after a reconnect). */
export async function loadBlocks() {
  const data = await api('GET', '/api/blocks');
  store.update('blocks', ({ blocks }) => {
    blocks.clear();
    for (const b of data?.blocks || []) blocks.set(b.id, b.username);
  });
}

/**
 * Blocks or unblocks `user`; the store follows once the server agreed.
 * @param {User} user
 * @param {boolean} on
 */
export async function setBlocked(user, on) {
  if (on) await api('POST', '/api/blocks', { username: user.username });
  else await api('DELETE', `/api/blocks/${encodeURIComponent(user.username)}`);
  store.update(['blocks', 'people'], ({ blocks, people }) => {
    if (on) blocks.set(user.id, user.username); else blocks.delete(user.id);
    const p = people.get(user.id);
    if (p) p.blocked = on;
  });
}

/** @type {(user: User, from?: HTMLElement) => void} */
let opener = () => {};

/**
 * Shows `user`'s profile card (their own profile, editable, for the signed-in user); focus goes
 * back to `from` when it closes.
 * @param {User} user
 * @param {HTMLElement} [from]
 */
export const openProfile = (user, from) => opener(user, from);

/** The people feature says how a profile opens. @param {(user: User, from?: HTMLElement) => void} fn */
export function provideProfile(fn) {
  opener = fn;
}

/**
 * A person's name as a button that opens their profile (text only).
 * @param {User} user
 * @param {string} cls
 * @param {string} text  what the button says (their name, or "You")
 */
export function nameButton(user, cls, text) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = `name-btn ${cls}`;
  b.textContent = text;
  b.title = isMe(user) ? 'Your profile' : `Profile of ${user.username}`;
  b.addEventListener('click', (e) => { e.stopPropagation(); openProfile(user, b); });
  return b;
}

/**
 * The direct message whose people are this user and `ids`, if the list has it.
 * @param {number[]} ids
 */
export function findDirect(ids) {
  const want = new Set([...ids, store.state.me?.id]);
  for (const r of store.state.rooms.values()) {
    if (r.kind !== 'dm' || !r.members || r.members.length !== want.size) continue;
    if (r.members.every((m) => want.has(m.id))) return r;
  }
  return null;
}

/**
 * Opens the direct message with `usernames` (1 to 9 others: a group for more than one), made
 * now or found (POST /api/dms answers the same room for the same people), and shows it.
 * @param {string[]} usernames
 * @returns {Promise<import('./types.js').Room>}
 */
export async function openDirect(usernames) {
  const data = await api('POST', '/api/dms', usernames.length === 1 ? { username: usernames[0] } : { usernames });
  const room = data.room;
  store.update('rooms', ({ rooms }) => {
    const known = rooms.get(room.id);
    if (known) Object.assign(known, { kind: 'dm', members: room.members || known.members, member: true });
    else rooms.set(room.id, roomFrom({ ...room, kind: 'dm', member: true }));
  });
  selectRoom(room.id);
  return /** @type {import('./types.js').Room} */ (store.state.rooms.get(room.id));
}

/**
 * Why a direct message with `usernames` could not be opened, in words (the refused user is never
 * told that someone blocked them: `dm_refused` says as little).
 * @param {any} e
 * @param {string[]} usernames
 */
export function directRefusal(e, usernames) {
  const one = usernames.length === 1 ? usernames[0] : null;
  switch (e.code) {
    case 'blocked': return one ? `You blocked ${one}. Unblock them to write to them.` : 'You blocked one of these people. Unblock them first, or leave them out.';
    case 'dm_refused': return one
      ? `${one} does not accept direct messages from you. Some people accept them only from people they share a room with.`
      : 'One of these people does not accept direct messages from you.';
    case 'not_found': return one ? `There is no user ${one}.` : 'One of these people no longer exists.';
    case 'dm_self': return 'Choose someone other than yourself.';
    default: return humanError(e.code, e.message);
  }
}
