// @ts-check
// info.js — the room info panel: description, kind (public, private, or a system room that has
// no owner), members with who is online, and adding members to a private room. It follows the
// open room and its presence through the store.

import { $, field, el, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { store, currentRoom, isMe } from '../../core/store.js';

/** @typedef {import('../../core/types.js').Room} Room */

/** @type {number | null} */
let infoFor = null;

export const infoOpen = () => !$('info').hidden;

/** @param {Room} room */
async function showInfo(room) {
  infoFor = room.id;
  $('info').hidden = false;
  $('open-info').setAttribute('aria-expanded', 'true');
  $('info-name').textContent = room.name;
  $('info-desc').textContent = room.description || 'No description.';
  $('info-meta').textContent = room.visibility === 'private' ? 'Private room' : 'Public room';
  let data;
  try { data = await api('GET', `/api/rooms/${room.id}`); } catch (e) {
    $('info-members').replaceChildren(el('li', 'note', humanError(e.code, e.message)));
    return;
  }
  if (infoFor !== room.id) return;
  $('info-meta').textContent = describe(data);
  room.members = data.members || [];
  renderMembers();
  const me = store.state.me;
  $('add-member').hidden = !(data.visibility === 'private' && (data.owner_id === me?.id || me?.role === 'admin'));
}

/**
 * "Public room · owner: alice · created 3 May 2025", or a system room's line.
 * @param {any} data
 */
function describe(data) {
  const created = `created ${new Date(data.created_at).toLocaleDateString()}`;
  if (data.owner_id == null) return `System room: open to everyone, owned by no one · ${created}`;
  const owner = (data.members || []).find((/** @type {any} */ m) => m.id === data.owner_id);
  const kind = data.visibility === 'private' ? 'Private' : 'Public';
  return `${kind} room · owner: ${owner ? owner.username : 'someone who left'} · ${created}`;
}

function renderMembers() {
  const room = currentRoom();
  if (!room || infoFor !== room.id || !room.members) return;
  const on = (/** @type {{id: number}} */ m) => (room.online.has(m.id) ? 1 : 0);
  const members = [...room.members].sort((a, b) => (on(b) - on(a)) || a.username.localeCompare(b.username));
  $('info-count').textContent = `(${members.length})`;
  $('info-members').replaceChildren(...members.map((m) => {
    const online = room.online.has(m.id);
    const li = el('li', online ? 'member online' : 'member');
    li.append(el('span', 'dot'), el('span', 'name', isMe(m) ? `${m.username} (you)` : m.username));
    if (m.role === 'owner') li.append(el('span', 'tag', 'owner'));
    li.setAttribute('aria-label', `${m.username}${m.role === 'owner' ? ', owner' : ''}, ${online ? 'online' : 'offline'}`);
    return li;
  }));
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
  $('add-member').addEventListener('submit', async (e) => {
    e.preventDefault();
    const room = currentRoom(), username = field('add-member-name').value.trim();
    if (!room || !username) return;
    showText('add-member-error', '');
    try {
      await api('POST', `/api/rooms/${room.id}/members`, { username });
      field('add-member-name').value = '';
      showInfo(room);
    } catch (err) {
      showText('add-member-error', humanError(err.code, err.message));
    }
  });
  store.subscribe('presence', renderMembers);
  store.subscribe('current', () => {
    const room = currentRoom();
    if (!room) hideInfo(); else if (infoOpen() && infoFor !== room.id) showInfo(room);
  });
}
