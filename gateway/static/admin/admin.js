// @ts-check
// admin.js — the admin panel (/admin), a page of its own for site admins: it asks GET /api/me
// who is signed in and shows nothing but a refusal to anyone else (every /api/admin route checks
// the role on the server anyway). Tabs switch between the sections, each its own module:
// users.js (search, sort, ban, unban, kick, mute, role, password), rooms.js, queue.js (the
// moderation queue across rooms), stats.js (cluster-wide, refreshed every few seconds while
// shown), audit.js (filters), broadcast.js (an announcement to everyone).

import { api } from '../core/api.js';
import { $, humanError } from '../core/dom.js';
import { startUsers } from './users.js';
import { startRooms } from './rooms.js';
import { startQueue } from './queue.js';
import { startStats } from './stats.js';
import { startAudit } from './audit.js';
import { startBroadcast } from './broadcast.js';

/** @type {Record<string, {show: () => void, hide?: () => void}>} */
const sections = {};

async function main() {
  let me;
  try {
    me = (await api('GET', '/api/me')).user;
  } catch (e) {
    refuse(e.status === 401 ? 'Sign in to Confab first, then open this page again.' : humanError(e.code, e.message));
    return;
  }
  if (me?.role !== 'admin') {
    refuse('This page is for site admins only.');
    return;
  }
  document.body.dataset.me = me.username;
  sections.users = startUsers(me);
  sections.rooms = startRooms();
  sections.queue = startQueue();
  sections.stats = startStats();
  sections.audit = startAudit();
  sections.broadcast = startBroadcast();
  $('admin-tabs').hidden = false;
  $('admin-main').hidden = false;
  for (const tab of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('#admin-tabs [data-tab]'))) {
    tab.addEventListener('click', () => open(/** @type {string} */ (tab.dataset.tab)));
  }
  open(location.hash.slice(1) in sections ? location.hash.slice(1) : 'users');
}

/** Shows section `name` and hides the others. @param {string} name */
function open(name) {
  for (const tab of /** @type {NodeListOf<HTMLElement>} */ (document.querySelectorAll('#admin-tabs [data-tab]'))) {
    tab.setAttribute('aria-selected', String(tab.dataset.tab === name));
  }
  for (const [key, s] of Object.entries(sections)) {
    const shown = key === name;
    const box = $(`tab-${key}`);
    if (box.hidden === !shown) continue;
    box.hidden = !shown;
    if (shown) s.show(); else s.hide?.();
  }
  history.replaceState(null, '', `#${name}`);
}

/** @param {string} text */
function refuse(text) {
  const p = $('admin-refused');
  p.textContent = text;
  p.hidden = false;
}

main();
