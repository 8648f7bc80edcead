// @ts-check
// users.js — the users section: search by name prefix, sort by name, last seen or newest,
// each user's role, online state, last seen and ban or mute; and the actions on one: ban (reason,
// optional end), unban, kick, mute (minutes), unmute, change role, reset password. The server
// refuses what the signed-in admin may not do (their own account, another admin) with a message
// the dialog shows.

import { api } from '../core/api.js';
import { $, el, field, fullDate, humanError, showText } from '../core/dom.js';
import { ask } from './dialog.js';

/** @typedef {{id: number, username: string, role: string, created_at: number, online: boolean,
 *   last_seen: number | null, banned: boolean, ban: {reason: string, since: number, expires_at: number | null} | null,
 *   muted_until: number | null}} AdminUser */

let offset = 0;
let token = 0;

/** @param {{username: string}} me */
export function startUsers(me) {
  $('users-form').addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  field('users-sort').addEventListener('change', () => load(true));
  $('users-more').addEventListener('click', () => load(false));
  document.body.dataset.admin = me.username;
  return { show: () => load(true) };
}

/** Loads the first page (`fresh`) or the next one. @param {boolean} fresh */
async function load(fresh) {
  const my = ++token;
  if (fresh) offset = 0;
  const q = new URLSearchParams({ q: field('users-q').value.trim(), sort: field('users-sort').value, offset: String(offset) });
  try {
    const page = await api('GET', `/api/admin/users?${q}`);
    if (my !== token) return;
    const body = $('users-body');
    if (fresh) body.replaceChildren();
    for (const u of page.users) body.append(row(u));
    offset = page.next_offset ?? offset;
    $('users-more').hidden = page.next_offset == null;
    showText('users-error', '');
  } catch (e) {
    showText('users-error', humanError(e.code, e.message));
  }
}

/** @param {AdminUser} u */
function row(u) {
  const tr = el('tr');
  tr.dataset.username = u.username;
  const seen = u.online ? el('span', 'online-dot', '● online') : el('span', null, 'offline');
  const last = el('td', null, u.last_seen ? fullDate(u.last_seen) : '—');
  const state = el('td', 'state');
  if (u.ban) {
    const s = el('span', 'state-banned', 'Banned');
    s.title = `${u.ban.reason}${u.ban.expires_at ? ` (until ${fullDate(u.ban.expires_at)})` : ''}`;
    state.append(s, el('div', 'note', u.ban.reason));
  } else if (u.muted_until && u.muted_until > Date.now()) {
    state.append(el('span', 'state-muted', `Muted until ${fullDate(u.muted_until)}`));
  } else state.textContent = 'Active';
  const acts = el('td', 'acts');
  const b = (/** @type {string} */ cls, /** @type {string} */ label, /** @type {() => void} */ run) => {
    const btn = /** @type {HTMLButtonElement} */ (el('button', cls, label));
    btn.type = 'button';
    btn.addEventListener('click', run);
    acts.append(btn);
  };
  const name = u.username;
  const done = () => load(true);
  if (u.banned) b('act-unban', 'Unban', () => ask({ title: `Unban ${name}?`, ok: 'Unban', run: async () => { await api('DELETE', `/api/admin/bans/${enc(name)}`); done(); } }));
  else b('act-ban danger', 'Ban', () => ask({
    title: `Ban ${name}`, ok: 'Ban', reason: 'required', expiry: true,
    run: async (a) => { await api('POST', '/api/admin/bans', { username: name, reason: a.reason, expires_at: a.expires_at ?? undefined }); done(); },
  }));
  b('act-kick', 'Kick', () => ask({
    title: `Kick ${name}? Their open apps disconnect; they may sign in again.`, ok: 'Kick', reason: 'optional',
    run: async (a) => { await api('POST', '/api/admin/kicks', { username: name, reason: a.reason || undefined }); done(); },
  }));
  if (u.muted_until && u.muted_until > Date.now()) b('act-unmute', 'Unmute', () => ask({ title: `Unmute ${name}?`, ok: 'Unmute', run: async () => { await api('DELETE', `/api/admin/mutes/${enc(name)}`); done(); } }));
  else b('act-mute', 'Mute', () => ask({
    title: `Mute ${name}`, ok: 'Mute', reason: 'optional', minutes: true,
    run: async (a) => { await api('POST', '/api/admin/mutes', { username: name, seconds: Math.round(a.minutes * 60), reason: a.reason || undefined }); done(); },
  }));
  b('act-role', 'Role…', () => ask({
    title: `Role of ${name}`, ok: 'Change', role: u.role,
    run: async (a) => { await api('POST', `/api/admin/users/${enc(name)}/role`, { role: a.role }); done(); },
  }));
  b('act-password', 'Reset password', () => ask({
    title: `Reset ${name}'s password? Every login of theirs ends.`, ok: 'Reset',
    run: async () => {
      const r = await api('POST', `/api/admin/users/${enc(name)}/password`);
      return `The new password of ${r.username} (shown only now): ${r.password}`;
    },
  }));
  const online = el('td', 'online');
  online.append(seen);
  tr.append(el('td', 'uname', u.username), el('td', 'role', u.role), online, last, state, acts);
  return tr;
}

const enc = encodeURIComponent;
