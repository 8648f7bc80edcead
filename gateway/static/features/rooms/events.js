// @ts-check
// events.js — what a room's events change in the room list and its rooms: each event moves the
// room's resume cursor (`seen`: every event has a seq, not only messages) and head; an edit or a
// delete of its last message changes the preview; `system` events rename, describe, change the
// owner and the members; leaving, being removed, or the room's deletion take the room off this
// user's list (a public room stays, to join again) and out of view.

import { onFrame } from '../../core/frames.js';
import { store, isMe, selectRoom } from '../../core/store.js';
import { toast } from '../../core/toast.js';

/** @typedef {import('../../core/types.js').Room} Room */
/** @typedef {import('../../core/types.js').Frame} Frame */

/** @param {Frame} f */
const roomOf = (f) => (f.room != null ? store.state.rooms.get(f.room) : undefined);

/**
 * Event `seq` of `r` was received: rejoining starts after it.
 * @param {Room} r
 * @param {number} seq
 */
export function advance(r, seq) {
  if (typeof seq !== 'number') return;
  r.seen = Math.max(r.seen, seq);
  r.head_seq = Math.max(r.head_seq || 0, seq);
}

/**
 * The user is no longer in room `id` (left, removed, or the room was deleted): a private or
 * deleted room leaves the list, a public one stays as one to join; if it was open, `general`
 * (or the first room) opens instead, and `note` says what happened.
 * @param {number} id
 * @param {{gone?: boolean, note?: string}} how  `gone`: the room itself no longer exists
 */
export function dropRoom(id, { gone = false, note = '' } = {}) {
  const { rooms, current } = store.state;
  const r = rooms.get(id);
  if (!r) return;
  store.update(['rooms', 'presence'], () => {
    if (gone || r.visibility === 'private') rooms.delete(id);
    else Object.assign(r, { member: false, joined: false, joining: false, unread: 0, members: undefined });
    r.online.clear();
  });
  if (current === id) {
    const next = [...rooms.values()].find((x) => x.name === 'general' && x.system) || [...rooms.values()].find((x) => x.member);
    if (next) selectRoom(next.id); else store.update(['current', 'rooms'], (s) => { s.current = null; });
  }
  if (note) toast(note);
}

/**
 * A `system` event's change to the room's state.
 * @param {Room} r
 * @param {Frame} f
 */
function applySystem(r, f) {
  const e = f.event || {};
  switch (e.op) {
    case 'renamed': r.name = e.name; break;
    case 'described': r.description = e.description; break;
    case 'owner_changed':
      r.owner_id = e.owner.id;
      if (r.members) {
        for (const m of r.members) if (m.role === 'owner') m.role = 'member';
        const m = r.members.find((x) => x.id === e.owner.id);
        if (m) m.role = 'owner'; else r.members.push({ ...e.owner, role: 'owner' });
      }
      break;
    case 'member_added':
      if (r.members && !r.members.some((m) => m.id === e.user.id)) r.members.push({ ...e.user, role: 'member' });
      if (isMe(e.user)) r.member = true;
      break;
    case 'member_left':
    case 'member_removed':
      if (r.members) r.members = r.members.filter((m) => m.id !== e.user.id);
      r.online.delete(e.user.id);
      break;
  }
}

export function registerRoomEvents() {
  onFrame('edited', (f) => {
    const r = roomOf(f);
    if (!r) return;
    store.update('rooms', () => {
      advance(r, f.seq);
      if (r.last && r.last.seq === f.target && !r.last.deleted) r.last = { ...r.last, body: f.body, edited: true };
    });
  });
  onFrame('deleted', (f) => {
    const r = roomOf(f);
    if (!r) return;
    store.update('rooms', () => {
      advance(r, f.seq);
      if (r.last && r.last.seq === f.target) r.last = { ...r.last, body: '', deleted: true };
    });
  });
  onFrame('system', (f) => {
    const r = roomOf(f);
    if (!r) return;
    store.update(['rooms', 'presence'], () => {
      advance(r, f.seq);
      applySystem(r, f);
    });
    const e = f.event || {};
    if ((e.op === 'member_left' || e.op === 'member_removed') && isMe(e.user)) {
      dropRoom(r.id, { note: e.op === 'member_removed' && !isMe(f.by) ? `${f.by?.username ?? 'The owner'} removed you from ${r.name}.` : '' });
    }
  });
  onFrame('room_deleted', (f) => { // to its subscribers, and (a public room) to every session
    const r = roomOf(f);
    if (!r) return;
    const concerned = r.member || r.id === store.state.current;
    dropRoom(r.id, { gone: true, note: concerned ? `The room ${r.name} was deleted.` : '' });
  });
}
