// @ts-check
// moderation — what site and room moderation shows in the main app:
// - the Admin link, for site admins only (the panel itself is /admin, its own page);
// - announcements (`broadcast` frames, and GET /api/broadcasts at sign-in and after each
//   reconnect for those sent meanwhile) as banners kept until dismissed;
// - a Report action on others' messages (a reason, then POST /api/rooms/{id}/reports);
// - a screen when staff ban or kick this account (the socket's `banned` error or its close
//   reason), instead of reconnecting in a loop: a kick may reconnect, a ban only log out;
// - the room staff's section of the room info panel (staff.js) and held or rejected sends
//   (held.js).

import { api } from '../../core/api.js';
import { $, el, field, humanError, showText } from '../../core/dom.js';
import { onFrame } from '../../core/frames.js';
import { logout, socket } from '../../core/session.js';
import { store } from '../../core/store.js';
import { toast } from '../../core/toast.js';
import { provideReportAction } from '../chat/messages.js';
import { startStaff } from './staff.js';
import { startHeld } from './held.js';
import { startSanctionDialog } from './sanction.js';

/** @typedef {import('../../core/types.js').Message} Message */
/** @typedef {{id: number, body: string, from?: {username: string} | null, ts: number, expires_at: number}} Announcement */

/** Announcements shown, by id. @type {Map<number, Announcement>} */
const shown = new Map();

function renderBanners() {
  const box = $('broadcasts');
  const now = Date.now();
  for (const [id, b] of shown) if (b.expires_at <= now) shown.delete(id);
  box.replaceChildren(...[...shown.values()].sort((a, b) => a.ts - b.ts).map((b) => {
    const div = el('div', 'broadcast');
    div.dataset.broadcast = String(b.id);
    div.setAttribute('role', 'status');
    const text = el('p', 'broadcast-body', b.body);
    const from = el('span', 'broadcast-from', b.from ? `Announcement from ${b.from.username}` : 'Announcement');
    const close = /** @type {HTMLButtonElement} */ (el('button', 'icon broadcast-dismiss', '✕'));
    close.type = 'button';
    close.setAttribute('aria-label', 'Dismiss this announcement');
    close.addEventListener('click', async () => {
      shown.delete(b.id);
      renderBanners();
      try { await api('POST', `/api/broadcasts/${b.id}/dismiss`); } catch { /* shown again at the next sign-in */ }
    });
    div.append(from, text, close);
    return div;
  }));
  box.hidden = shown.size === 0;
}

async function loadBanners() {
  if (!store.state.me) return;
  try {
    const r = await api('GET', '/api/broadcasts');
    for (const b of r.broadcasts ?? []) shown.set(b.id, b);
    renderBanners();
  } catch { /* the frame still brings new ones */ }
}

// ---- reports ----

/** @type {Message | null} */
let reporting = null;

/** @param {Message} m */
function openReport(m) {
  reporting = m;
  const dlg = /** @type {HTMLDialogElement} */ ($('report-dialog'));
  $('report-quote').textContent = `${m.from?.username ?? 'Someone'}: ${(m.body ?? '').slice(0, 200)}`;
  field('report-reason').value = '';
  showText('report-error', '');
  dlg.showModal();
  field('report-reason').focus();
}

async function sendReport() {
  const m = reporting;
  if (!m) return;
  const reason = field('report-reason').value.trim();
  if (!reason) return showText('report-error', 'Say what is wrong with the message.');
  const btn = /** @type {HTMLButtonElement} */ ($('report-send'));
  btn.disabled = true;
  try {
    await api('POST', `/api/rooms/${m.room}/reports`, { seq: m.seq, reason });
    /** @type {HTMLDialogElement} */ ($('report-dialog')).close();
    toast('Reported. The room\'s moderators will look at it.');
  } catch (e) {
    showText('report-error', humanError(e.code, e.message));
  } finally {
    btn.disabled = false;
  }
}

// ---- banned or kicked ----

/** @param {'banned' | 'kicked'} why @param {string} [detail] */
function ended(why, detail) {
  if (!store.state.me) return;
  if (!$('ended').hidden && $('ended').dataset.why === why && !detail) return; // the close after the error frame
  socket.stop();
  const banned = why === 'banned';
  $('ended-title').textContent = banned ? 'Your account is banned' : 'You were disconnected';
  $('ended-text').textContent = banned
    ? humanError('banned', detail || 'this account is banned')
    : 'A moderator disconnected you. You can reconnect now.';
  $('ended').dataset.why = why;
  $('ended-again').hidden = banned;
  $('ended').hidden = false;
  // The socket's frame does not carry the ban's reason and end; the REST refusal does.
  if (banned) api('GET', '/api/me').catch((e) => { if (e.code === 'banned') $('ended-text').textContent = humanError(e.code, e.message); });
  $('app').setAttribute('inert', '');
  (banned ? $('ended-out') : $('ended-again')).focus();
}

function closeEnded() {
  $('ended').hidden = true;
  $('app').removeAttribute('inert');
}

export default {
  name: 'moderation',
  views: new URL('./view.html', import.meta.url),
  start() {
    store.subscribe('me', ({ me }) => {
      $('admin-link').hidden = me?.role !== 'admin';
      if (me) loadBanners();
      else { shown.clear(); renderBanners(); closeEnded(); }
    });
    onFrame('hello', () => { loadBanners(); });
    onFrame('broadcast', (f) => {
      shown.set(f.id, { id: f.id, body: f.body, from: f.from, ts: f.ts, expires_at: f.expires_at });
      renderBanners();
    });
    onFrame('error', (f) => { if (f.code === 'banned') ended('banned', f.message); });
    onFrame('closed', (f) => {
      if (f.reason === 'banned') ended('banned');
      else if (f.reason === 'kicked') ended('kicked');
    });
    $('ended-again').addEventListener('click', () => { closeEnded(); socket.start(); });
    $('ended-out').addEventListener('click', () => { closeEnded(); logout(); });
    provideReportAction(openReport);
    $('report-form').addEventListener('submit', (e) => { e.preventDefault(); sendReport(); });
    $('report-cancel').addEventListener('click', () => /** @type {HTMLDialogElement} */ ($('report-dialog')).close());
    startSanctionDialog();
    startStaff();
    startHeld();
  },
};
