// @ts-check
// dms — direct messages: their section of the sidebar (rooms of `kind` dm, kept live by the
// inbox like any room: new ones appear through `room_added`, unread and mention badges through
// `activity`; each named by its other people, with an online dot for a conversation of two when
// it is known), the "new message" dialog (dialog.js), and, in a conversation with someone this
// user blocked, a note that says so with "Unblock". The other person's online state and last
// seen come from their profile (GET /api/users/{username}, read again at most once a minute per
// person while the page is in view) and, while the conversation is open, from its presence.

import { $, el, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { rememberPeople, isBlocked, onlineState, setBlocked } from '../../core/people.js';
import { store, currentRoom, dmOthers, personName } from '../../core/store.js';
import { endedBy } from '../../core/session.js';
import { listed, replaceItems, roomItem } from '../rooms/list.js';
import { wireDmDialog } from './dialog.js';

/** @typedef {import('../../core/types.js').Room} Room */

/** Profiles read at most this often per person. */
const PROFILE_FRESH_MS = 60 * 1000;
/** Conversations whose other person's profile is kept fresh (the newest ones). */
const PROFILES_KEPT = 30;

/** @param {Room} r  The other person of a conversation of two, else null. */
const partner = (r) => {
  const others = dmOthers(r);
  return r.members && r.members.length === 2 && others.length === 1 ? others[0] : null;
};

/** @param {Room} r  The online dot before a conversation of two's name. */
function dot(r) {
  const p = partner(r);
  if (!p) return null;
  const online = onlineState(p.id, r);
  const d = el('span', online ? 'dot on' : 'dot');
  d.setAttribute('aria-hidden', 'true');
  if (online != null) d.dataset.says = online ? 'online' : 'offline';
  return d;
}

function renderDmList() {
  const { current } = store.state;
  const shown = listed(true);
  replaceItems($('dms'), shown.map((r) => roomItem(r, current, dot(r))));
  const any = [...store.state.rooms.values()].some((r) => r.kind === 'dm');
  $('dms-empty').hidden = any;
}

/** user id -> when their profile was last asked for. @type {Map<number, number>} */
const askedAt = new Map();
let asking = false;

/** Reads the profiles of the newest conversations' other people that are not fresh. */
async function refreshPartners() {
  if (asking || document.visibilityState !== 'visible' || !store.state.me) return;
  asking = true;
  try {
    const now = Date.now();
    const due = listed(true).map(partner).filter((p) => p != null).slice(0, PROFILES_KEPT)
      .filter((p) => now - (askedAt.get(p.id) || 0) > PROFILE_FRESH_MS);
    for (const p of due) {
      askedAt.set(p.id, Date.now());
      try { rememberPeople([await api('GET', `/api/users/${encodeURIComponent(p.username)}`)]); } catch (e) {
        if (endedBy(e)) return;
      }
    }
  } finally {
    asking = false;
  }
}

/** In a conversation of two with someone blocked: the note, and its "Unblock". */
function renderNote() {
  const r = currentRoom(), p = r?.kind === 'dm' ? partner(r) : null;
  const blocked = !!p && isBlocked(p.id);
  $('dm-note').hidden = !blocked;
  if (p && blocked) $('dm-note-text').textContent = `You blocked ${personName(p)}: neither of you can send messages here until you unblock them.`;
}

async function unblockPartner() {
  const r = currentRoom(), p = r ? partner(r) : null;
  if (!p) return;
  try { await setBlocked(p, false); } catch (e) {
    if (!endedBy(e)) showText('compose-error', humanError(e.code, e.message));
  }
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'dms',
  views: new URL('./view.html', import.meta.url),
  start() {
    wireDmDialog();
    store.subscribe(['rooms', 'current', 'people', 'blocks', 'presence'], renderDmList);
    store.subscribe(['rooms', 'current', 'blocks', 'people'], renderNote);
    store.subscribe('rooms', () => { refreshPartners(); });
    $('dm-unblock').addEventListener('click', unblockPartner);
    $('room-filter').addEventListener('input', renderDmList);
    document.addEventListener('visibilitychange', () => { refreshPartners(); });
    setInterval(refreshPartners, PROFILE_FRESH_MS);
    store.subscribe('me', ({ me }) => { if (!me) askedAt.clear(); });
  },
};
