// @ts-check
// search — full-text search over the messages this user may read: the search button in the
// room's header opens the results panel (beside the conversation; over it on phones, where the
// room info panel goes), whose box searches as one types (350 ms after the last key, or at once
// on Enter) with GET /api/search, optionally only in the open room; 20 results a page, "More
// results" for the next. A result shows its room (or conversation), sender, time and the
// server's snippet with the hits marked (`<mark>`, made as text, never HTML); choosing it opens
// the room at that message (store `openAt`: the chat loads the events around it).

import { $, el, field, showText, humanError, stamp, fullDate, revealed, count } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { endedBy } from '../../core/session.js';
import { store, currentRoom, isMe, openAt, roomTitle } from '../../core/store.js';
import { toast } from '../../core/toast.js';
import { hideInfo, infoOpen } from '../rooms/info.js';

const PAGE = 20;
const DEBOUNCE_MS = 350;
/** The longest query the server takes. */
const MAX_QUERY = 200;

/**
 * A result as GET /api/search gives it.
 * @typedef {{room: number, room_name?: string, room_kind?: string, seq: number, id?: string,
 *   from?: {id: number, username: string}, ts: number | string,
 *   snippet?: Array<{text: string, hit: boolean}>}} Result
 */

const state = { q: '', room: /** @type {number | null} */ (null), next: /** @type {number | null} */ (null), token: 0, timer: 0, total: 0 };

const panelOpen = () => !$('search-panel').hidden;
/** A phone's layout: the panel covers the conversation. */
const narrow = () => matchMedia('(max-width: 767px)').matches;

function openPanel() {
  if (infoOpen()) hideInfo();
  $('search-panel').hidden = false;
  $('open-search').setAttribute('aria-expanded', 'true');
  renderHere();
  field('search-q').focus();
  field('search-q').select();
}

function closePanel() {
  if (!panelOpen()) return;
  $('search-panel').hidden = true;
  $('open-search').setAttribute('aria-expanded', 'false');
}

/** "Only in …" names the open room. */
function renderHere() {
  const r = currentRoom();
  $('search-here-name').textContent = r ? (r.kind === 'dm' ? `this conversation (${roomTitle(r)})` : r.name) : 'this room';
  /** @type {HTMLInputElement} */ ($('search-here')).disabled = !r;
}

/**
 * Searches for what the box says: a new list of results, or (`more`) its next page.
 * @param {boolean} more
 */
async function search(more) {
  clearTimeout(state.timer);
  const q = field('search-q').value.trim();
  const here = /** @type {HTMLInputElement} */ ($('search-here')).checked ? store.state.current : null;
  const my = ++state.token;
  showText('search-error', '');
  if (!more && !q) {
    $('search-results').replaceChildren();
    $('search-note').textContent = '';
    $('search-more').hidden = true;
    return;
  }
  if ([...q].length > MAX_QUERY) {
    showText('search-error', `Search for at most ${MAX_QUERY} characters.`);
    return;
  }
  const params = new URLSearchParams({ q, limit: String(PAGE) });
  if (here != null) params.set('room', String(here));
  if (more && state.next != null) params.set('offset', String(state.next));
  if (!more) $('search-note').textContent = 'Searching…';
  const btn = /** @type {HTMLButtonElement} */ ($('search-more'));
  btn.disabled = true;
  let data;
  try { data = await api('GET', `/api/search?${params}`); } catch (e) {
    if (my !== state.token || endedBy(e)) return;
    $('search-note').textContent = '';
    showText('search-error', e.code === 'too_long' ? `Search for at most ${MAX_QUERY} characters.` : humanError(e.code, e.message));
    return;
  } finally {
    btn.disabled = false;
  }
  if (my !== state.token) return; // the box changed meanwhile
  /** @type {Result[]} */
  const results = data?.results || [];
  Object.assign(state, { q, room: here, next: data?.next ?? null, total: (more ? state.total : 0) + results.length });
  const items = results.map(resultItem);
  if (more) $('search-results').append(...items); else $('search-results').replaceChildren(...items);
  btn.hidden = state.next == null;
  $('search-note').textContent = state.total === 0 ? `No message matches “${q}”.`
    : `${count(state.total)}${state.next != null ? '+' : ''} ${state.total === 1 ? 'message' : 'messages'}`;
}

/**
 * The snippet as text, its hits in <mark>.
 * @param {Result} r
 */
function snippet(r) {
  const p = el('p', 'result-snippet');
  for (const seg of r.snippet || []) p.append(seg.hit ? el('mark', null, revealed(seg.text)) : revealed(seg.text));
  return p;
}

/** @param {Result} r  Where a result was said. */
function whereOf(r) {
  const room = store.state.rooms.get(r.room);
  if (room) return roomTitle(room);
  return r.room_kind === 'dm' ? 'Direct message' : r.room_name || `room ${r.room}`;
}

/** @param {Result} r */
function resultItem(r) {
  const li = el('li');
  const b = /** @type {HTMLButtonElement} */ (el('button', 'result'));
  b.type = 'button';
  b.dataset.room = String(r.room);
  b.dataset.seq = String(r.seq);
  const top = el('span', 'result-top');
  const where = whereOf(r), who = r.from ? (isMe(r.from) ? 'You' : r.from.username) : 'someone';
  top.append(el('span', 'result-room', where), el('span', 'result-from', who));
  const time = /** @type {HTMLTimeElement} */ (el('time', 'result-time', stamp(r.ts)));
  time.dateTime = new Date(r.ts).toISOString();
  time.title = fullDate(r.ts);
  top.append(time);
  b.append(top, snippet(r));
  b.setAttribute('aria-label', `${who} in ${where}, ${fullDate(r.ts)}: ${(r.snippet || []).map((s) => s.text).join('')}`);
  b.addEventListener('click', () => open(r));
  li.append(b);
  return li;
}

/** Opens the result's room at its message. @param {Result} r */
function open(r) {
  if (!openAt(r.room, r.seq)) { toast('That conversation is no longer in your list.'); return; }
  for (const b of $('search-results').querySelectorAll('.result.active')) b.classList.remove('active');
  $('search-results').querySelector(`.result[data-room="${r.room}"][data-seq="${r.seq}"]`)?.classList.add('active');
  if (narrow()) closePanel();
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'search',
  views: new URL('./view.html', import.meta.url),
  start() {
    $('open-search').addEventListener('click', () => { if (panelOpen() && !narrow()) closePanel(); else openPanel(); });
    $('close-search').addEventListener('click', () => { closePanel(); $('open-search').focus(); });
    $('open-info').addEventListener('click', () => { if (infoOpen()) closePanel(); });
    $('search-form').addEventListener('submit', (e) => { e.preventDefault(); search(false); });
    field('search-q').addEventListener('input', () => {
      clearTimeout(state.timer);
      state.timer = setTimeout(() => search(false), DEBOUNCE_MS);
    });
    $('search-here').addEventListener('change', () => search(false));
    $('search-more').addEventListener('click', () => search(true));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && panelOpen() && $('search-panel').contains(/** @type {Node} */ (document.activeElement))) {
        closePanel();
        $('open-search').focus();
      }
    });
    store.subscribe(['current', 'rooms'], () => {
      if (!panelOpen()) return;
      const wasHere = /** @type {HTMLInputElement} */ ($('search-here')).checked && state.room != null && state.room !== store.state.current;
      renderHere();
      if (wasHere) search(false); // "only in this room": the room changed
    });
    store.subscribe('me', ({ me }) => {
      if (me) return;
      closePanel();
      field('search-q').value = '';
      $('search-results').replaceChildren();
      $('search-note').textContent = '';
    });
  },
};
