// @ts-check
// dialog.js — the "new message" dialog: people search (GET /api/users?q=, a prefix of a username
// or display name; typed words wait 250 ms, answers older than the latest are dropped; "More
// people" follows the `next` cursor), choosing one person or up to 9 for a group, then
// POST /api/dms (through core/people.js) and the conversation opens. Each refusal is said in
// words (someone blocked, a refusal of direct messages, too many people, an unknown user).

import { $, el, field, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { endedBy } from '../../core/session.js';
import { rememberPeople, isBlocked, openDirect, findDirect, directRefusal } from '../../core/people.js';
import { isMe, selectRoom } from '../../core/store.js';

/** @typedef {import('../../core/types.js').Profile} Profile */

/** Others in one conversation at most (10 people with oneself). */
const MAX_OTHERS = 9;
const PAGE = 20;
const DEBOUNCE_MS = 250;

/** The people chosen, in the order chosen. @type {Map<number, Profile>} */
const picked = new Map();
/** The query shown and the cursor of its next page. */
const found = { q: '', next: /** @type {string | number | null} */ (null), token: 0, timer: 0 };

const dialog = () => /** @type {HTMLDialogElement} */ ($('dm-dialog'));
/** @param {Profile} p */
const nameOf = (p) => p.display_name || p.username;

/** Opens the dialog empty, listing people from the start of the directory. */
export function openDmDialog() {
  picked.clear();
  field('dm-search').value = '';
  showText('dm-error', '');
  renderPicked();
  dialog().showModal();
  field('dm-search').focus();
  search(false);
}

/**
 * Loads the people matching the search box: a new list, or (`more`) its next page.
 * @param {boolean} more
 */
async function search(more) {
  clearTimeout(found.timer);
  const q = field('dm-search').value.trim();
  const my = ++found.token;
  const params = new URLSearchParams({ limit: String(PAGE) });
  if (q) params.set('q', q);
  if (more && found.next != null) params.set('after', String(found.next));
  const btn = /** @type {HTMLButtonElement} */ ($('dm-more'));
  btn.disabled = true;
  if (!more) showText('dm-people-note', 'Searching…');
  let data;
  try { data = await api('GET', `/api/users?${params}`); } catch (e) {
    if (my !== found.token || endedBy(e)) return;
    showText('dm-people-note', humanError(e.code, e.message));
    btn.hidden = true;
    return;
  } finally {
    btn.disabled = false;
  }
  if (my !== found.token) return; // a later search is on its way
  const users = /** @type {Profile[]} */ (data?.users || []);
  rememberPeople(users);
  found.q = q;
  found.next = data?.next ?? null;
  const items = users.filter((u) => !isMe(u)).map(person);
  if (more) $('dm-people').append(...items); else $('dm-people').replaceChildren(...items);
  btn.hidden = found.next == null;
  const none = $('dm-people').childElementCount === 0;
  showText('dm-people-note', none ? (q ? `Nobody’s name starts with “${q}”.` : 'Nobody else is here yet.') : '');
}

/**
 * One person of the results: a toggle (pressed when chosen) with their names, status and
 * whether they are online.
 * @param {Profile} p
 */
function person(p) {
  const li = el('li');
  const b = /** @type {HTMLButtonElement} */ (el('button', 'person'));
  b.type = 'button';
  b.dataset.userId = String(p.id);
  b.dataset.username = p.username;
  b.setAttribute('aria-pressed', String(picked.has(p.id)));
  const dot = el('span', p.online ? 'dot on' : 'dot');
  dot.title = p.online ? 'Online' : 'Offline';
  const names = el('span', 'person-names');
  names.append(el('span', 'person-name', nameOf(p)), el('span', 'person-user', `@${p.username}`));
  if (p.status) names.append(el('span', 'person-status', p.status));
  b.append(dot, names);
  if (isBlocked(p.id)) b.append(el('span', 'tag', 'blocked'));
  b.setAttribute('aria-label', `${nameOf(p)} (@${p.username})${p.online ? ', online' : ''}${isBlocked(p.id) ? ', blocked' : ''}`);
  b.addEventListener('click', () => toggle(p));
  li.append(b);
  return li;
}

/** @param {Profile} p */
function toggle(p) {
  showText('dm-error', '');
  if (picked.has(p.id)) picked.delete(p.id);
  else if (picked.size >= MAX_OTHERS) return showText('dm-error', humanError('too_many_members', ''));
  else picked.set(p.id, p);
  renderPicked();
}

/** The chosen people as chips (each removable), and what the start button says. */
function renderPicked() {
  $('dm-picked').replaceChildren(...[...picked.values()].map((p) => {
    const chip = el('span', 'chip');
    chip.append(el('span', null, nameOf(p)));
    const x = /** @type {HTMLButtonElement} */ (el('button', 'chip-x', '✕'));
    x.type = 'button';
    x.setAttribute('aria-label', `Remove ${p.username}`);
    x.addEventListener('click', () => toggle(p));
    chip.append(x);
    return chip;
  }));
  for (const b of /** @type {NodeListOf<HTMLElement>} */ ($('dm-people').querySelectorAll('.person'))) {
    b.setAttribute('aria-pressed', String(picked.has(Number(b.dataset.userId))));
  }
  const start = /** @type {HTMLButtonElement} */ ($('dm-start'));
  start.disabled = picked.size === 0;
  start.textContent = picked.size > 1 ? `Start group (${picked.size + 1} people)` : 'Message';
}

async function start() {
  const people = [...picked.values()];
  if (!people.length) return;
  const known = findDirect(people.map((p) => p.id));
  if (known) { dialog().close(); selectRoom(known.id); return; }
  const btn = /** @type {HTMLButtonElement} */ ($('dm-start'));
  btn.disabled = true;
  showText('dm-error', '');
  try {
    await openDirect(people.map((p) => p.username));
    dialog().close();
  } catch (e) {
    if (!endedBy(e)) showText('dm-error', directRefusal(e, people.map((p) => p.username)));
  } finally {
    btn.disabled = picked.size === 0;
  }
}

export function wireDmDialog() {
  $('new-dm').addEventListener('click', openDmDialog);
  $('dm-cancel').addEventListener('click', () => dialog().close());
  $('dm-form').addEventListener('submit', (e) => { e.preventDefault(); start(); });
  field('dm-search').addEventListener('input', () => {
    clearTimeout(found.timer);
    found.timer = setTimeout(() => search(false), DEBOUNCE_MS);
  });
  field('dm-search').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); search(false); } // searches now, never submits
  });
  $('dm-more').addEventListener('click', () => search(true));
}
