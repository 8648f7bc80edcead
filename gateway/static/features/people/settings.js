// @ts-check
// settings.js — one's own profile card: display name, status line and who may send one direct
// messages (`dm_policy`: everyone, or only people who share a room), saved with
// PATCH /api/me/profile into the store's `me`; and the people one blocked, each with "Unblock".

import { $, el, field, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { endedBy } from '../../core/session.js';
import { setBlocked } from '../../core/people.js';
import { store } from '../../core/store.js';

/** The form, from `me` as GET /api/me gives it now. */
export async function fillSettings() {
  showText('me-error', '');
  showText('me-saved', '');
  fill(store.state.me);
  renderBlocked();
  try {
    const me = await api('GET', '/api/me');
    // Not the `me` topic: that one means someone signed in or out.
    store.update('people', (s) => { if (s.me) Object.assign(s.me, pick(me)); });
    fill(store.state.me);
  } catch (e) {
    if (!endedBy(e)) showText('me-error', humanError(e.code, e.message));
  }
}

/** @param {any} me */
const pick = (me) => ({ display_name: me.display_name ?? '', status: me.status ?? '', dm_policy: me.dm_policy ?? 'everyone' });

/** @param {import('../../core/types.js').User | null} me */
function fill(me) {
  if (!me) return;
  field('me-display').value = me.display_name ?? '';
  field('me-status').value = me.status ?? '';
  const policy = me.dm_policy === 'shared_rooms' ? 'shared_rooms' : 'everyone';
  const radio = /** @type {HTMLInputElement | null} */ ($('me-form').querySelector(`input[name=dm_policy][value=${policy}]`));
  if (radio) radio.checked = true;
}

async function save() {
  const form = /** @type {HTMLFormElement} */ ($('me-form'));
  const btn = /** @type {HTMLButtonElement} */ ($('me-save'));
  const display_name = field('me-display').value.trim(), status = field('me-status').value.trim();
  const dm_policy = /** @type {RadioNodeList} */ (form.elements.namedItem('dm_policy')).value || 'everyone';
  if ([...display_name].length > 64) return showText('me-error', 'A display name has at most 64 characters.');
  if ([...status].length > 140) return showText('me-error', 'A status has at most 140 characters.');
  btn.disabled = true;
  showText('me-error', '');
  showText('me-saved', '');
  try {
    const me = await api('PATCH', '/api/me/profile', { display_name, status, dm_policy });
    store.update('people', (s) => {
      if (s.me) Object.assign(s.me, pick(me));
      if (s.me && s.people.has(s.me.id)) Object.assign(/** @type {object} */ (s.people.get(s.me.id)), pick(me));
    });
    showText('me-saved', 'Saved.');
  } catch (e) {
    if (!endedBy(e)) showText('me-error', humanError(e.code, e.message));
  } finally {
    btn.disabled = false;
  }
}

/** The people this user blocked, each with its "Unblock" button. */
export function renderBlocked() {
  const { blocks } = store.state;
  const people = [...blocks].sort((a, b) => a[1].localeCompare(b[1]));
  $('blocked-list').replaceChildren(...people.map(([id, username]) => {
    const li = el('li', 'member');
    li.append(el('span', 'name', username));
    const un = /** @type {HTMLButtonElement} */ (el('button', 'member-act unblock', 'Unblock'));
    un.type = 'button';
    un.setAttribute('aria-label', `Unblock ${username}`);
    un.addEventListener('click', async () => {
      un.disabled = true;
      showText('blocked-error', '');
      try { await setBlocked({ id, username }, false); } catch (e) {
        if (!endedBy(e)) showText('blocked-error', humanError(e.code, e.message));
        un.disabled = false;
      }
    });
    li.append(un);
    return li;
  }));
  $('blocked-empty').hidden = people.length > 0;
}

export function wireSettings() {
  $('me-form').addEventListener('submit', (e) => { e.preventDefault(); save(); });
  store.subscribe('blocks', renderBlocked);
}
