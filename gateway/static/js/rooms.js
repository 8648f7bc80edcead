// rooms.js — the sidebar (room list with unread counts, last message and a filter), the
// new-room dialog and the room info panel (description, owner, members, who is online).

import { $, el, showText, shortTime, humanError } from './dom.js';
import { api } from './api.js';
import { state, isMe } from './state.js';

// Rooms sorted by latest activity, then name, filtered by the search box.
export function renderRoomList(onPick) {
  const q = $('room-filter').value.trim().toLowerCase();
  const rooms = [...state.rooms.values()]
    .filter((r) => !q || r.name.toLowerCase().includes(q) || (r.description || '').toLowerCase().includes(q))
    .sort((a, b) => (b.last?.ts || b.created_at || 0) - (a.last?.ts || a.created_at || 0) || a.name.localeCompare(b.name));
  // Re-rendering must not take the keyboard focus away from the list.
  const focused = $('rooms').contains(document.activeElement) ? document.activeElement.dataset.roomId : null;
  $('rooms').replaceChildren(...rooms.map((r) => roomItem(r, onPick)));
  if (focused) $('rooms').querySelector(`[data-room-id="${focused}"]`)?.focus();
  $('rooms-empty').hidden = rooms.length > 0 || !q;
  let total = 0;
  for (const r of state.rooms.values()) if (r.member) total += r.unread || 0;
  document.title = total ? `(${total}) Confab` : 'Confab';
}

function roomItem(r, onPick) {
  const li = el('li');
  const b = el('button', r.id === state.current ? 'room active' : 'room');
  b.type = 'button';
  b.dataset.roomId = r.id;
  if (r.id === state.current) b.setAttribute('aria-current', 'true');
  const top = el('span', 'room-top');
  top.append(el('span', 'room-name', r.name));
  if (r.visibility === 'private') top.append(el('span', 'tag', 'private'));
  if (r.last) top.append(el('time', 'room-time', shortTime(r.last.ts)));
  const bottom = el('span', 'room-bottom');
  const preview = r.last
    ? `${isMe(r.last.from) ? 'You' : r.last.from?.username ?? ''}: ${r.last.deleted ? 'deleted message' : r.last.body}`
    : (r.description || (r.member ? 'No messages yet' : 'Public room: open to join'));
  bottom.append(el('span', 'room-last', preview.slice(0, 120)));
  const unread = r.member && r.id !== state.current ? r.unread || 0 : 0;
  if (unread) bottom.append(el('span', 'badge', unread > 99 ? '99+' : unread));
  else if (!r.member) bottom.append(el('span', 'tag', 'join'));
  b.append(top, bottom);
  b.setAttribute('aria-label', `${r.name}${r.visibility === 'private' ? ', private' : ''}${unread ? `, ${unread} unread` : ''}${r.member ? '' : ', not joined'}`);
  b.addEventListener('click', () => onPick(r.id));
  li.append(b);
  return li;
}

// ---- new room ---------------------------------------------------------------
export function wireRoomDialog(onCreated) {
  const dlg = $('room-dialog');
  $('new-room').addEventListener('click', () => {
    $('room-form').reset();
    showText('room-error', '');
    dlg.showModal();
    $('room-name').focus();
  });
  $('room-cancel').addEventListener('click', () => dlg.close());
  $('room-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('room-name').value.trim();
    if (!name) return showText('room-error', 'Give the room a name.');
    const visibility = $('room-form').elements.visibility.value || 'public';
    $('room-create').disabled = true;
    showText('room-error', '');
    try {
      const room = await api('POST', '/api/rooms', { name, description: $('room-desc').value.trim(), visibility });
      dlg.close();
      onCreated(room);
    } catch (err) {
      showText('room-error', humanError(err.code, err.message));
    } finally {
      $('room-create').disabled = false;
    }
  });
}

// ---- room info --------------------------------------------------------------
let infoFor = null;

export function infoOpen() { return !$('info').hidden; }

export async function showInfo(room) {
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
  const owner = (data.members || []).find((m) => m.id === data.owner_id);
  $('info-meta').textContent = `${data.visibility === 'private' ? 'Private' : 'Public'} room · owner: ${owner ? owner.username : 'none'} · created ${new Date(data.created_at).toLocaleDateString()}`;
  room.members = data.members || [];
  renderMembers(room);
  $('add-member').hidden = !(data.visibility === 'private' && (data.owner_id === state.me?.id || state.me?.role === 'admin'));
}

export function renderMembers(room) {
  if (infoFor !== room.id || !room.members) return;
  const members = [...room.members].sort((a, b) => (room.online.has(b.id) - room.online.has(a.id)) || a.username.localeCompare(b.username));
  $('info-count').textContent = `(${members.length})`;
  $('info-members').replaceChildren(...members.map((m) => {
    const on = room.online.has(m.id);
    const li = el('li', on ? 'member online' : 'member');
    li.append(el('span', 'dot'), el('span', 'name', isMe(m) ? `${m.username} (you)` : m.username));
    if (m.role === 'owner') li.append(el('span', 'tag', 'owner'));
    li.setAttribute('aria-label', `${m.username}${m.role === 'owner' ? ', owner' : ''}, ${on ? 'online' : 'offline'}`);
    return li;
  }));
}

export function hideInfo() {
  infoFor = null;
  $('info').hidden = true;
  $('open-info').setAttribute('aria-expanded', 'false');
}

export function wireInfo(current) {
  $('open-info').addEventListener('click', () => { if (infoOpen()) hideInfo(); else if (current()) showInfo(current()); });
  $('close-info').addEventListener('click', () => { hideInfo(); $('open-info').focus(); });
  $('add-member').addEventListener('submit', async (e) => {
    e.preventDefault();
    const room = current(), username = $('add-member-name').value.trim();
    if (!room || !username) return;
    showText('add-member-error', '');
    try {
      await api('POST', `/api/rooms/${room.id}/members`, { username });
      $('add-member-name').value = '';
      showInfo(room);
    } catch (err) {
      showText('add-member-error', humanError(err.code, err.message));
    }
  });
}
