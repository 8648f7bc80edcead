// @ts-check
// rooms — the room list and what keeps it true: the REST list (every page, again after each
// reconnect), the subscriptions (the inbox and the open room: core/membership.js), the inbox's
// events and every room's `activity` (inbox.js: new and removed rooms, unread and mention
// counts, previews), `joined`/`left`/`resync`/`presence` frames, the room events' effects
// (events.js), the drawer on phones, the new-room dialog and the room info panel with its
// management actions.

import { $, field, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { onFrame } from '../../core/frames.js';
import { join, syncJoins, socketLost, resetInbox } from '../../core/membership.js';
import { logout, endedBy } from '../../core/session.js';
import { store, roomFrom, isMe, selectRoom } from '../../core/store.js';
import { renderRoomList } from './list.js';
import { wireRoomDialog } from './dialog.js';
import { wireInfo, hideInfo, infoOpen } from './info.js';
import { registerRoomEvents, advance } from './events.js';
import { registerInbox } from './inbox.js';

const LAST_ROOM = 'confab.room';

/** Every page of GET /api/rooms (500 rooms a page, following `next`). */
async function allRooms() {
  const rooms = [];
  let path = '/api/rooms?limit=500';
  for (let page = 0; page < 200; page++) {
    const data = await api('GET', path);
    rooms.push(...(data.rooms || []));
    if (data.next == null) break;
    path = `/api/rooms?limit=500&after=${encodeURIComponent(data.next)}`;
  }
  return rooms;
}

let loaded = false;
/** `hello`s since signing in: each one after the first is a reconnect. */
let hellos = 0;

/**
 * The list from REST, merged into what the socket already tracks: `seen` never moves back for a
 * joined room; a room not joined takes the listed head (its newest page comes over REST when it
 * opens). Unread and mention counts are the server's, except for the open room, which is being
 * read.
 */
export async function loadRooms() {
  let list;
  try { list = await allRooms(); } catch (e) {
    if (!endedBy(e) && e.status === 0) showText('compose-error', humanError(e.code, e.message));
    return;
  }
  loaded = true;
  store.update('rooms', ({ rooms, current }) => {
    const ids = new Set();
    for (const r of list) {
      ids.add(r.id);
      const known = rooms.get(r.id);
      if (!known) { rooms.set(r.id, roomFrom(r)); continue; }
      const { seen, joined, joining, online, onlineExtra, last, unread, mentions, read_seq, head_seq, members, listed_head } = known;
      const head = r.head ?? r.head_seq ?? 0;
      // A direct message's members come with the list; a room's only with its info panel.
      Object.assign(known, r, { seen, joined, joining, online, onlineExtra, members: r.members || members });
      if (last && (!r.last || last.seq > r.last.seq)) known.last = last;
      // The server may not have stored a cursor this page just sent, nor a message it just got.
      known.read_seq = Math.max(read_seq || 0, r.read_seq || 0);
      known.head_seq = Math.max(head_seq || 0, head);
      if (!joined && !joining) known.seen = Math.max(seen, head);
      // Counts as of the list's head; activity that came meanwhile told of later messages, so
      // a list older than it keeps the counts it has (they include that activity).
      const older = head < (head_seq || 0);
      if (r.id === current || older) Object.assign(known, { unread, mentions, listed_head });
      else Object.assign(known, { unread: r.unread || 0, mentions: r.mentions || 0, listed_head: head });
    }
    // A stranger chat is in no list: the stranger feature keeps it (features/stranger).
    for (const [id, r] of rooms) if (!ids.has(id) && r.kind !== 'stranger') rooms.delete(id);
  });
  const { current, rooms } = store.state;
  if (current != null && !rooms.has(current)) openFirstRoom(); // it went away meanwhile
  syncJoins();
}

/** The room from the address (#room/ID), the last one opened, `general`, or the first. */
function openFirstRoom() {
  const { rooms } = store.state;
  let wanted = Number((location.hash.match(/^#room\/(\d+)$/) || [])[1]);
  try { wanted ||= Number(localStorage.getItem(LAST_ROOM)); } catch { /* no storage */ }
  const r = rooms.get(wanted) || [...rooms.values()].find((x) => x.name === 'general') || rooms.values().next().value;
  if (r) selectRoom(r.id); else store.update(['current', 'rooms'], (s) => { s.current = null; });
}

// ---- frames -----------------------------------------------------------------------
/** @param {import('../../core/types.js').Frame} f */
const roomOf = (f) => (f.room != null ? store.state.rooms.get(f.room) : undefined);

function registerFrames() {
  onFrame('hello', (f) => {
    store.update('inbox', (s) => { s.inbox = f.inbox ?? null; });
    syncJoins();
    if (hellos++ > 0 && loaded) loadRooms(); // a reconnect: what changed meanwhile (rooms, counts, previews)
  });
  onFrame('joined', (f) => {
    const r = roomOf(f), me = store.state.me;
    if (!r) return;
    store.update(['rooms', 'presence'], () => {
      r.joined = true;
      r.joining = false;
      r.member = true;
      r.online = new Map((f.online || []).map((/** @type {any} */ u) => [u.id, u.username]));
      const self = r.you || me; // in a stranger chat, one's alias there
      if (self) r.online.set(self.id, self.username); // the list leaves out the joiner
      r.onlineExtra = Math.max(0, (f.online_count || 0) - r.online.size);
    });
  });
  onFrame('presence', (f) => {
    const r = roomOf(f);
    if (!r || !f.user) return;
    store.update('presence', () => {
      if (f.online) r.online.set(f.user.id, f.user.username); else r.online.delete(f.user.id);
    });
  });
  onFrame('left', (f) => { const r = roomOf(f); if (r) r.joined = false; });
  onFrame('resync', (f) => { // too far behind to replay: the chat view reloads the newest page
    const r = roomOf(f);
    if (!r) return;
    r.seen = f.head;
    r.joined = false;
    join(r);
  });
  onFrame('message', (m) => {
    const r = roomOf(m);
    if (!r) return;
    store.update('rooms', () => {
      // Counted once: not replayed again, not in the list's count already, not the open room's.
      const counts = m.seq > r.seen && m.seq > (r.listed_head || 0) && !isMe(m.from) && r.id !== store.state.current;
      advance(r, m.seq);
      if (!r.last || m.seq >= r.last.seq) r.last = /** @type {any} */ (m);
      if (counts) r.unread = (r.unread || 0) + 1;
    });
  });
  onFrame('error', (f) => { // a refused join, leave or read (a refused send is the chat's)
    const r = roomOf(f);
    if (!r || f.ref != null) return;
    r.joining = false;
    if (f.code === 'retry' || f.code === 'overloaded') {
      setTimeout(() => { if (!r.joined) syncJoins(); }, 500 + Math.random() * 500);
    }
  });
}

// ---- the drawer (phones) ------------------------------------------------------------
function openDrawer() {
  $('app').classList.add('drawer-open');
  $('scrim').hidden = false;
  $('open-drawer').setAttribute('aria-expanded', 'true');
  $('room-filter').focus();
}

function closeDrawer() {
  if (!$('app').classList.contains('drawer-open')) return;
  $('app').classList.remove('drawer-open');
  $('scrim').hidden = true;
  $('open-drawer').setAttribute('aria-expanded', 'false');
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'rooms',
  views: new URL('./view.html', import.meta.url),
  start() {
    registerFrames();
    registerRoomEvents();
    registerInbox({ reload: loadRooms });
    wireInfo();
    wireRoomDialog(async (room) => {
      store.update('rooms', (s) => { s.rooms.set(room.id, roomFrom({ ...room, member: true })); });
      await loadRooms();
      selectRoom(room.id);
    });
    store.subscribe(['rooms', 'current', 'blocks'], renderRoomList);
    field('room-filter').addEventListener('input', renderRoomList);
    $('logout').addEventListener('click', logout);
    $('open-drawer').addEventListener('click', openDrawer);
    $('scrim').addEventListener('click', closeDrawer);
    document.addEventListener('keydown', (e) => {
      if (e.key !== 'Escape') return;
      if ($('app').classList.contains('drawer-open')) { closeDrawer(); $('open-drawer').focus(); }
      else if (infoOpen()) { hideInfo(); $('open-info').focus(); }
    });

    store.subscribe('me', ({ me }) => {
      if (!me) { document.title = 'Confab'; loaded = false; hellos = 0; resetInbox(); return; }
      $('me').textContent = me.username;
      loadRooms().then(openFirstRoom);
    });
    store.subscribe('current', ({ current, rooms }) => {
      closeDrawer();
      syncJoins(); // joins the open room (a public room: joining makes us a member), leaves the one before
      const r = current == null ? null : rooms.get(current);
      if (!r) return;
      try { localStorage.setItem(LAST_ROOM, String(r.id)); } catch { /* no storage */ }
      history.replaceState(null, '', `#room/${r.id}`);
    });
    // A lost connection: nothing is joined and nobody is known to be online until `hello`.
    store.subscribe('status', ({ status, rooms }) => {
      if (status !== 'offline' && status !== 'reconnecting') return;
      socketLost();
      store.update('presence', () => {
        for (const r of rooms.values()) { r.joined = r.joining = false; r.online.clear(); r.onlineExtra = 0; }
      });
    });
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'visible' && store.state.me) loadRooms(); // rooms others made meanwhile
    });
  },
};
