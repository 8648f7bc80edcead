// @ts-check
// rooms.js — the rooms section: every room the admin can see (GET /api/rooms), its owner and
// members on request (GET /api/rooms/{id}), and deleting one (admins may delete any room).

import { api } from '../core/api.js';
import { $, el, humanError, showText } from '../core/dom.js';
import { confirmAction } from '../core/confirm.js';

export function startRooms() {
  return { show: load };
}

async function load() {
  try {
    const page = await api('GET', '/api/rooms?limit=500');
    const rooms = (page.rooms ?? []).filter((/** @type {any} */ r) => r.kind !== 'dm');
    $('rooms-body').replaceChildren(...rooms.map(row));
    showText('rooms-error', '');
  } catch (e) {
    showText('rooms-error', humanError(e.code, e.message));
  }
}

/** @param {any} r */
function row(r) {
  const tr = el('tr');
  tr.dataset.room = String(r.id);
  const owner = el('td', 'owner', '…');
  const members = el('td', 'members');
  const show = /** @type {HTMLButtonElement} */ (el('button', null, 'Show members'));
  show.type = 'button';
  members.append(show);
  const details = async () => {
    try {
      const full = await api('GET', `/api/rooms/${r.id}`);
      /** @type {Array<{username: string, role?: string}>} */
      const list = full.members ?? [];
      owner.textContent = list.find((m) => m.role === 'owner')?.username ?? '—';
      return list;
    } catch (e) {
      owner.textContent = '—';
      return [];
    }
  };
  details();
  show.addEventListener('click', async () => {
    const list = await details();
    members.replaceChildren(el('span', null, list.map((m) => (m.role && m.role !== 'member' ? `${m.username} (${m.role})` : m.username)).join(', ') || 'none'));
  });
  const acts = el('td', 'acts');
  const del = /** @type {HTMLButtonElement} */ (el('button', 'danger', 'Delete'));
  del.type = 'button';
  del.addEventListener('click', async () => {
    const yes = await confirmAction({ title: `Delete #${r.name}?`, text: 'Its messages are gone for everyone.', action: 'Delete room' });
    if (!yes) return;
    try { await api('DELETE', `/api/rooms/${r.id}`); tr.remove(); } catch (e) { showText('rooms-error', humanError(e.code, e.message)); }
  });
  acts.append(del);
  tr.append(el('td', null, `#${r.name}`), owner, members, acts);
  return tr;
}
