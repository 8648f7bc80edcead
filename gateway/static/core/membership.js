// @ts-check
// membership.js — what the one socket is subscribed to: the user's inbox (their own event
// sequence: rooms added and removed, mentions, and the `activity` of every room of theirs) and at
// most one room, the one on screen. Each join carries `since` = the highest seq received, so a
// reconnect replays exactly what was missed: no gap, and the message list ignores a seq it
// already shows. Switching rooms leaves the previous one. The inbox cursor lives in memory only:
// a new page load starts from the room list (REST), not from a replay.
//
// A room with sends or changes not yet answered (written offline, then another room opened)
// stays joined until they are: the server answers only on a joined socket.
//
// A server older than protocol 3 names no inbox in `hello`: then every member room is joined,
// as before, so the list stays live.

import { socket } from './session.js';
import { store } from './store.js';

/** @typedef {import('./types.js').Room} Room */

/**
 * The inbox subscription: `seen` is the highest inbox seq received, -1 before the first
 * `joined` (which starts it at the inbox's head: earlier events are in the room list already).
 */
export const inbox = { seen: -1, joined: false, joining: false };

/** @param {Room} r */
export function join(r) {
  if (socket.send({ type: 'join', room: r.id, since: r.seen })) r.joining = true;
}

/** @type {Array<(r: Room) => void>} */
const leaving = [];
/** @type {Array<(room: number) => boolean>} */
const holding = [];

/**
 * Keeps a room joined, though not on screen, while `fn(room)` says so (unanswered sends); the
 * caller calls `syncJoins` once it no longer does.
 * @param {(room: number) => boolean} fn
 */
export function keepJoinedWhile(fn) {
  holding.push(fn);
}

/** @param {Room} r */
const wanted = (r) => r.id === store.state.current || holding.some((fn) => fn(r.id));

/**
 * Calls `fn(room)` just before the socket leaves a room, while it may still send frames for it
 * (the chat sends its read cursor: the server takes one only from a joined socket).
 * @param {(r: Room) => void} fn
 */
export function beforeLeave(fn) {
  leaving.push(fn);
}

/** @param {Room} r */
function leave(r) {
  if (r.joined) for (const fn of leaving) fn(r);
  socket.send({ type: 'leave', room: r.id });
  r.joined = r.joining = false;
  r.online.clear();
  r.onlineExtra = 0;
}

function joinInbox() {
  const id = store.state.inbox;
  if (id == null || inbox.joined || inbox.joining) return;
  if (socket.send({ type: 'join', room: id, since: inbox.seen >= 0 ? inbox.seen : undefined })) inbox.joining = true;
}

/**
 * Brings the subscriptions in line with the screen: the inbox and the open room joined, every
 * other room left. Called after each `hello`, each room list load, and each change of room.
 */
export function syncJoins() {
  if (!socket.ready) return;
  const { rooms, inbox: inboxId } = store.state;
  if (inboxId == null) { // protocol 2: no inbox, so every member room stays joined
    for (const r of rooms.values()) if ((r.member || wanted(r)) && !r.joined && !r.joining) join(r);
    return;
  }
  joinInbox();
  for (const r of rooms.values()) {
    if (wanted(r)) { if (!r.joined && !r.joining) join(r); } else if (r.joined || r.joining) leave(r);
  }
}

/** The socket is gone: nothing is subscribed until the next `hello`. */
export function socketLost() {
  inbox.joined = inbox.joining = false;
}

/** A new user signed in: the inbox cursor was someone else's. */
export function resetInbox() {
  inbox.seen = -1;
  inbox.joined = inbox.joining = false;
}
