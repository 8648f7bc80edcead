// @ts-check
// staff.js — the room staff's tools in the room info panel, for the room's owner and moderators
// and for site staff (`my_role` of GET /api/rooms/{id}, and the site role): appoint and remove
// room moderators (owner and site admins), mute, ban or remove a member, the sanctions in force
// (each can be lifted; a mute, ban or removal asks a reason and how long: sanction.js), the
// room's moderation queue with its decisions (kept current by `queued` frames: held messages,
// automatic flags and reports as they happen), and the pre-moderation switch. The server decides: a refusal is shown, not hidden.

import { api } from '../../core/api.js';
import { $, el, field, humanError, showText } from '../../core/dom.js';
import { confirmAction } from '../../core/confirm.js';
import { onFrame } from '../../core/frames.js';
import { store } from '../../core/store.js';
import { onInfoLoaded, provideMemberExtras, infoRoom, reloadInfo } from '../rooms/info.js';
import { queueItem, queueError, nameOf } from './queue.js';
import { askSanction } from './sanction.js';

/** @typedef {import('../../core/types.js').Room} Room */

/** The caller's role in each room whose info was loaded. @type {Map<number, string | null>} */
const myRole = new Map();

function siteStaff() {
  const r = store.state.me?.role;
  return r === 'admin' || r === 'moderator';
}
/** @param {number} room */
const isStaff = (room) => siteStaff() || myRole.get(room) === 'owner' || myRole.get(room) === 'moderator';
/** @param {number} room */
const appoints = (room) => store.state.me?.role === 'admin' || myRole.get(room) === 'owner';

/** @param {string} text */
const fail = (text) => showText('staff-error', text);

/**
 * @param {string} cls @param {string} label @param {string} aria @param {() => Promise<unknown>} run
 * @param {{title: string, text: string, action: string}} [ask]
 */
function button(cls, label, aria, run, ask) {
  const b = /** @type {HTMLButtonElement} */ (el('button', `member-act ${cls}`, label));
  b.type = 'button';
  b.setAttribute('aria-label', aria);
  b.addEventListener('click', async () => {
    if (ask && !(await confirmAction(ask))) return;
    b.disabled = true;
    try { if ((await run()) !== false) { fail(''); reloadInfo(); } } catch (e) { fail(humanError(e.code, e.message)); } finally { b.disabled = false; }
  });
  return b;
}

/** @param {Room} room @param {{id: number, username: string, role?: string}} m */
function memberExtras(room, m) {
  if (!isStaff(room.id)) return [];
  const name = encodeURIComponent(m.username);
  const out = [];
  if (appoints(room.id)) {
    out.push(m.role === 'moderator'
      ? button('staff-unmod', 'Remove moderator', `Remove ${m.username} as a moderator`, () => api('DELETE', `/api/rooms/${room.id}/moderators/${name}`))
      : button('staff-mod', 'Make moderator', `Make ${m.username} a moderator of the room`, () => api('PUT', `/api/rooms/${room.id}/moderators/${name}`)));
  }
  /** @param {'mute' | 'ban' | 'remove'} kind @param {string} title @param {string} ok */
  const sanction = (kind, title, ok) => () => askSanction({
    title, ok, kind,
    run: ({ reason, minutes }) => api('POST', `/api/rooms/${room.id}/sanctions`, {
      username: m.username, kind, reason: reason || undefined,
      expires_at: minutes ? Date.now() + minutes * 60_000 : undefined,
    }),
  });
  out.push(
    button('staff-mute', 'Mute…', `Mute ${m.username} in this room`,
      sanction('mute', `Mute ${m.username} in ${room.name}`, 'Mute')),
    button('staff-ban', 'Ban…', `Ban ${m.username} from this room`,
      sanction('ban', `Ban ${m.username} from ${room.name}? They are removed now and cannot join again while it lasts.`, 'Ban')),
    button('staff-remove', 'Kick out…', `Take ${m.username} out of this room now`,
      sanction('remove', `Remove ${m.username} from ${room.name} now? They may join a public room again.`, 'Remove')),
  );
  return out;
}

/** @param {Room} room @param {any} data */
async function loaded(room, data) {
  myRole.set(room.id, data.my_role ?? null);
  const box = $('staff-box');
  const staff = isStaff(room.id) && room.kind !== 'dm' && !room.system;
  box.hidden = !staff;
  box.dataset.room = String(room.id);
  fail('');
  if (!staff) return;
  store.update('rooms'); // the member list draws the staff buttons now that the role is known
  const premod = field('staff-premod');
  premod.disabled = !appoints(room.id);
  api('GET', `/api/rooms/${room.id}/moderation`).then((s) => {
    premod.checked = !!s.premod;
    showText('staff-premod-note', '');
  }).catch((e) => { premod.disabled = true; showText('staff-premod-note', queueError(e)); });
  api('GET', `/api/rooms/${room.id}/sanctions`).then((s) => renderSanctions(room, s.sanctions ?? []))
    .catch((e) => $('staff-sanctions').replaceChildren(el('li', 'note', queueError(e))));
  loadQueue(room.id);
}

/** @param {Room} room @param {Array<{username: string, kind: string, reason?: string, by?: unknown, expires_at?: number | null}>} list */
function renderSanctions(room, list) {
  if (!list.length) { $('staff-sanctions').replaceChildren(el('li', 'note', 'None.')); return; }
  $('staff-sanctions').replaceChildren(...list.map((s) => {
    const li = el('li', 'member sanction');
    li.dataset.username = s.username;
    li.dataset.kind = s.kind;
    const until = s.expires_at ? ` until ${new Date(s.expires_at).toLocaleString()}` : '';
    li.append(el('span', 'name', `${s.username}: ${s.kind}${until}${s.by ? ` (by ${nameOf(s.by)})` : ''}${s.reason ? `: ${s.reason}` : ''}`));
    li.append(button('staff-lift', 'Lift', `Lift ${s.username}'s ${s.kind}`,
      () => api('DELETE', `/api/rooms/${room.id}/sanctions/${encodeURIComponent(s.username)}/${s.kind}`)));
    return li;
  }));
}

/** @param {number} room */
async function loadQueue(room) {
  try {
    const page = await api('GET', `/api/rooms/${room}/queue?status=open`);
    if (infoRoom() !== room) return;
    const items = page.items ?? [];
    $('staff-queue').replaceChildren(...items.map((/** @type {any} */ it) => item(room, it)));
    $('staff-queue-empty').hidden = items.length > 0;
  } catch (e) {
    $('staff-queue').replaceChildren(el('li', 'note', queueError(e)));
  }
}

/** @param {number} room @param {import('./queue.js').QueueItem} it */
function item(room, it) {
  const li = queueItem(it, (updated) => li.replaceWith(item(room, updated)), askSanction);
  return li;
}

export function startStaff() {
  onInfoLoaded(loaded);
  provideMemberExtras(memberExtras);
  field('staff-premod').addEventListener('change', async () => {
    const room = infoRoom();
    if (room == null) return;
    const box = field('staff-premod');
    try { await api('PATCH', `/api/rooms/${room}/moderation`, { premod: box.checked }); fail(''); } catch (e) {
      box.checked = !box.checked;
      fail(humanError(e.code, e.message));
    }
  });
  // A held message as it is held, a flag or a report as it is filed (an item shown already is
  // drawn again in its place).
  onFrame('queued', (f) => {
    if (infoRoom() !== f.room || $('staff-box').hidden) return;
    const shown = $('staff-queue').querySelector(`li.queue-item[data-item="${Number(f.item?.id)}"]`);
    if (shown) shown.replaceWith(item(f.room, f.item));
    else $('staff-queue').prepend(item(f.room, f.item));
    $('staff-queue-empty').hidden = true;
  });
}
