// @ts-check
// inbox.js — the room list kept live without joining its rooms. The user's inbox (joined like a
// room, with `since`) says when a room was added to or removed from their list (a direct message
// too: `kind` dm, with its members) and when someone mentioned them; on the same subscription each room of theirs sends `activity` (its new head,
// how many messages, the newest one) at most about once a second, and every connected session
// hears of new public rooms (`room_created`). The open room is joined, so its own frames count
// for it and its activity is ignored. Counts already in the REST list (up to `listed_head`) are
// not counted again.

import { onFrame } from '../../core/frames.js';
import { inbox, syncJoins } from '../../core/membership.js';
import { store, roomFrom, isMe } from '../../core/store.js';
import { dropRoom } from './events.js';

/** @typedef {import('../../core/types.js').Frame} Frame */

/** @param {Frame} f */
const isInbox = (f) => f.room != null && f.room === store.state.inbox;

/** @type {() => Promise<void>} */
let reload = async () => {};
let reloadTimer = 0;
/** Loads the room list again soon, once for a burst of changes. */
function reloadSoon() {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => reload(), 150);
}

/**
 * An inbox event: a room added or removed, a mention.
 * @param {Frame} f
 */
function onInboxEvent(f) {
  if (typeof f.seq === 'number') inbox.seen = Math.max(inbox.seen, f.seq);
  const e = f.event || {}, rooms = store.state.rooms, r = rooms.get(e.room);
  switch (e.op) {
    case 'room_added':
      if (r) { if (!r.member) store.update('rooms', () => { r.member = true; }); return; }
      store.update('rooms', () => {
        // A direct message (`kind` dm) names its members: the list shows them as its name.
        rooms.set(e.room, roomFrom({ id: e.room, name: e.name ?? '', kind: e.kind ?? 'room', members: e.members, visibility: e.visibility, member: true, created_at: f.ts }));
      });
      reloadSoon(); // its head, owner, last message
      return;
    case 'room_removed': {
      if (!r) return;
      const by = isMe(f.by) ? '' : f.by?.username ?? 'Someone';
      const note = e.reason === 'removed' && by ? `${by} removed you from ${r.name}.`
        : e.reason === 'deleted' && by ? `The room ${r.name} was deleted.` : '';
      dropRoom(r.id, { gone: e.reason === 'deleted', note });
      return;
    }
    case 'mention':
      // The open room shows it; a mention the room list counted already is not counted again.
      if (!r || r.id === store.state.current || e.target <= (r.listed_head || 0)) return;
      store.update('rooms', () => { r.mentions = (r.mentions || 0) + 1; });
  }
}

/**
 * A room of the user's moved on: its head, unread count, preview and name, unless it is the
 * open room (joined: its own frames say all that) or the news is not newer than what is known.
 * @param {Frame} f
 */
function onActivity(f) {
  const { rooms, current } = store.state, r = rooms.get(f.room);
  if (!r) return reloadSoon(); // a room not listed yet
  if (r.id === current || r.joined || r.joining || f.head <= (r.head_seq || 0)) return;
  // Its messages are among the events after the head known so far (at most that many are new:
  // a room list loaded in the middle of the activity's second counted some of them already).
  const fresh = Math.min(f.messages, f.head - (r.head_seq || 0));
  store.update('rooms', () => {
    r.head_seq = f.head;
    r.seen = Math.max(r.seen, f.head); // its newest page comes over REST when it opens
    if (f.name) r.name = f.name;
    if (f.last && (!r.last || f.last.seq >= r.last.seq)) r.last = { room: r.id, ...f.last };
    const ownOnly = fresh === 1 && isMe(f.last?.from);
    if (r.member && fresh > 0 && !ownOnly) r.unread = (r.unread || 0) + fresh;
  });
}

/** @param {{reload: () => Promise<void>}} hooks  `reload`: load the room list again */
export function registerInbox(hooks) {
  reload = hooks.reload;
  onFrame('joined', (f) => {
    if (!isInbox(f)) return;
    inbox.joined = true;
    inbox.joining = false;
    if (inbox.seen < 0) inbox.seen = f.head;
  });
  onFrame('left', (f) => { if (isInbox(f)) inbox.joined = inbox.joining = false; });
  onFrame('resync', (f) => { // more missed than a replay gives: the list has it all
    if (!isInbox(f)) return;
    inbox.seen = f.head;
    reload();
  });
  onFrame('error', (f) => {
    if (!isInbox(f) || f.ref != null) return;
    inbox.joining = false;
    if (f.code === 'retry' || f.code === 'overloaded') setTimeout(syncJoins, 500 + Math.random() * 500);
  });
  onFrame('system', (f) => { if (isInbox(f)) onInboxEvent(f); });
  onFrame('activity', onActivity);
  onFrame('room_created', (f) => {
    const room = f.room, rooms = store.state.rooms;
    if (!room || rooms.has(room.id)) return;
    const mine = room.owner != null && room.owner === store.state.me?.id;
    store.update('rooms', () => {
      rooms.set(room.id, roomFrom({ ...room, owner_id: room.owner ?? null, system: room.owner == null, member: mine, created_at: Date.now() }));
    });
  });
}
