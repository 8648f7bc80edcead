// @ts-check
// rooms.js — the rooms section: every chat room, private ones too (GET /api/admin/rooms: search
// by a part of the name, sort by name, newest or members, pages), each with its visibility,
// owner and member count; its members on request (GET /api/rooms/{id}); deleting one with a
// reason (DELETE /api/admin/rooms/{id}, audited).

import { api } from '../core/api.js';
import { $, el, field, fullDate, humanError, showText } from '../core/dom.js';
import { ask } from './dialog.js';

/** @typedef {{id: number, name: string, visibility: string, owner: {id: number, username: string} | null,
 *   members: number, created_at: number}} AdminRoom */

let offset = 0;
let token = 0;

export function startRooms() {
  $('rooms-form').addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  field('rooms-sort').addEventListener('change', () => load(true));
  $('rooms-more').addEventListener('click', () => load(false));
  return { show: () => load(true) };
}

/** Loads the first page (`fresh`) or the next one. @param {boolean} fresh */
async function load(fresh) {
  const my = ++token;
  if (fresh) offset = 0;
  const q = new URLSearchParams({ q: field('rooms-q').value.trim(), sort: field('rooms-sort').value, offset: String(offset) });
  try {
    const page = await api('GET', `/api/admin/rooms?${q}`);
    if (my !== token) return;
    const body = $('rooms-body');
    if (fresh) body.replaceChildren();
    for (const r of page.rooms) body.append(row(r));
    offset = page.next_offset ?? offset;
    $('rooms-more').hidden = page.next_offset == null;
    $('rooms-empty').hidden = !(fresh && page.rooms.length === 0);
    showText('rooms-error', '');
  } catch (e) {
    showText('rooms-error', humanError(e.code, e.message));
  }
}

/** @param {AdminRoom} r */
function row(r) {
  const tr = el('tr');
  tr.dataset.room = String(r.id);
  tr.dataset.visibility = r.visibility;
  const members = el('td', 'members');
  const show = /** @type {HTMLButtonElement} */ (el('button', null, `${r.members} · show`));
  show.type = 'button';
  show.setAttribute('aria-label', `Show the ${r.members} members of ${r.name}`);
  show.addEventListener('click', async () => {
    try {
      const full = await api('GET', `/api/rooms/${r.id}`);
      /** @type {Array<{username: string, role?: string}>} */
      const list = full.members ?? [];
      members.replaceChildren(el('span', null, list.map((m) => (m.role && m.role !== 'member' ? `${m.username} (${m.role})` : m.username)).join(', ') || 'none'));
    } catch (e) {
      showText('rooms-error', humanError(e.code, e.message));
    }
  });
  members.append(show);
  const acts = el('td', 'acts');
  if (r.owner) { // a system room (no owner) is not deleted
    const del = /** @type {HTMLButtonElement} */ (el('button', 'danger act-delete-room', 'Delete'));
    del.type = 'button';
    del.addEventListener('click', () => ask({
      title: `Delete #${r.name}? Its messages are gone for everyone.`, ok: 'Delete room', reason: 'optional',
      run: async (a) => {
        const q = a.reason ? `?${new URLSearchParams({ reason: a.reason })}` : '';
        await api('DELETE', `/api/admin/rooms/${r.id}${q}`);
        tr.remove();
      },
    }));
    acts.append(del);
  }
  tr.append(
    el('td', 'rname', `#${r.name}`),
    el('td', 'visibility', r.visibility),
    el('td', 'owner', r.owner?.username ?? '—'),
    members,
    el('td', null, fullDate(r.created_at)),
    acts,
  );
  return tr;
}
