// @ts-check
// info.js — the room info panel: name, description, kind (public, private, a system room that
// has no owner, or a direct message), members with who is online (each name opens their
// profile), and what the user may do to the room (manage.js; nothing, for a direct message).
// It renders from the store, so a rename, a new owner or a member who leaves shows at once for
// everyone who has it open; the member list comes from GET /api/rooms/{id} when it opens.

import { $, el, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { nameButton } from '../../core/people.js';
import { store, currentRoom, isMe, roomTitle } from '../../core/store.js';
import { wireManage, canManage, memberActions, fillEditForm } from './manage.js';

/** @typedef {import('../../core/types.js').Room} Room */

/** @type {number | null} */
let infoFor = null;

/** Told each time the panel has loaded a room's details (GET /api/rooms/{id}). @type {Array<(room: Room, data: any) => void>} */
const loadedHooks = [];
/** @param {(room: Room, data: any) => void} fn */
export function onInfoLoaded(fn) { loadedHooks.push(fn); }

/**
 * More buttons for a member (room moderation provides them; none without it).
 * @type {(room: Room, m: import('../../core/types.js').User & {role?: string}) => HTMLElement[]}
 */
let memberExtras = () => [];
/** @param {typeof memberExtras} fn */
export function provideMemberExtras(fn) { memberExtras = fn; }

/** The room the panel shows, if open. */
export const infoRoom = () => (infoOpen() ? infoFor : null);

export const infoOpen = () => !$('info').hidden;

/** @param {Room} room */
async function showInfo(room) {
  infoFor = room.id;
  $('info').hidden = false;
  $('open-info').setAttribute('aria-expanded', 'true');
  for (const id of ['members-error', 'add-member-error', 'room-edit-error', 'room-danger-error']) $(id).hidden = true;
  fillEditForm(room, true);
  renderInfo();
  let data;
  try { data = await api('GET', `/api/rooms/${room.id}`); } catch (e) {
    if (infoFor === room.id) $('info-members').replaceChildren(el('li', 'note', humanError(e.code, e.message)));
    return;
  }
  if (infoFor !== room.id) return;
  store.update('rooms', () => {
    room.members = data.members || [];
    room.owner_id = data.owner_id;
    room.created_at = data.created_at;
    room.system = !!data.system;
  });
  for (const fn of loadedHooks) fn(room, data);
}

/**
 * "Public room · owner: alice · created 3 May 2025", or a system room's line.
 * @param {Room} room
 */
function describe(room) {
  if (room.kind === 'dm') {
    const n = (room.members || []).length;
    return n > 2 ? `Group conversation of ${n} people · only they can read it` : 'Direct message · only the two of you can read it';
  }
  const created = room.created_at ? ` · created ${new Date(room.created_at).toLocaleDateString()}` : '';
  if (room.system || (room.owner_id == null && room.members)) return `System room: open to everyone, owned by no one${created}`;
  const kind = room.visibility === 'private' ? 'Private room' : 'Public room';
  if (!room.members) return kind + created;
  const owner = room.members.find((m) => m.id === room.owner_id);
  return `${kind} · owner: ${owner ? owner.username : 'someone who left'}${created}`;
}

/** The panel, from the store (the open room, its members, who is online, what the user may do). */
function renderInfo() {
  const room = currentRoom();
  if (!room || infoFor !== room.id || !infoOpen()) return;
  const me = store.state.me;
  const manage = canManage(room);
  const dm = room.kind === 'dm';
  $('info-name').textContent = roomTitle(room);
  $('info-desc').textContent = dm ? '' : room.description || 'No description.';
  $('info-meta').textContent = describe(room);
  fillEditForm(room, false);
  $('room-edit-box').hidden = !manage;
  $('add-member').hidden = !(room.visibility === 'private' && manage);
  const owns = room.owner_id != null && room.owner_id === me?.id;
  $('leave-room').hidden = !!room.system || !room.member || owns || dm;
  $('leave-note').hidden = !owns;
  $('delete-room').hidden = !!room.system || !manage;
  renderMembers(room, manage);
}

/** @param {Room} room @param {boolean} manage */
function renderMembers(room, manage) {
  if (!room.members) { $('info-count').textContent = ''; $('info-members').replaceChildren(el('li', 'note', 'Loading…')); return; }
  const on = (/** @type {{id: number}} */ m) => (room.online.has(m.id) ? 1 : 0);
  const members = [...room.members].sort((a, b) => (on(b) - on(a)) || a.username.localeCompare(b.username));
  $('info-count').textContent = `(${members.length})`;
  $('info-members').replaceChildren(...members.map((m) => {
    const online = room.online.has(m.id), owner = m.id === room.owner_id;
    const li = el('li', online ? 'member online' : 'member');
    li.dataset.userId = String(m.id);
    li.append(el('span', 'dot'), nameButton(m, 'name', isMe(m) ? `${m.username} (you)` : m.username));
    if (owner) li.append(el('span', 'tag', 'owner'));
    else if (m.role === 'moderator') li.append(el('span', 'tag', 'moderator'));
    if (manage && !owner && !isMe(m) && !room.system) li.append(...memberActions(room, m));
    if (!owner && !isMe(m) && !room.system && room.kind !== 'dm') li.append(...memberExtras(room, m));
    li.setAttribute('aria-label', `${m.username}${owner ? ', owner' : ''}, ${online ? 'online' : 'offline'}`);
    return li;
  }));
}

/** Loads the open panel's room again (its members changed). */
export function reloadInfo() {
  const room = currentRoom();
  if (room && infoOpen()) showInfo(room);
}

export function hideInfo() {
  infoFor = null;
  $('info').hidden = true;
  $('open-info').setAttribute('aria-expanded', 'false');
}

export function wireInfo() {
  $('open-info').addEventListener('click', () => {
    const room = currentRoom();
    if (infoOpen()) hideInfo(); else if (room) showInfo(room);
  });
  $('close-info').addEventListener('click', () => { hideInfo(); $('open-info').focus(); });
  wireManage({ reload: reloadInfo });
  store.subscribe(['rooms', 'presence', 'me'], renderInfo);
  store.subscribe('current', () => {
    const room = currentRoom();
    if (!room) hideInfo(); else if (infoOpen() && infoFor !== room.id) showInfo(room);
  });
}
