// @ts-check
// membership.js — joining rooms over the socket. One socket joins every room the user is a member
// of (and the open one), each with `since` = the highest seq received, so a reconnect replays
// exactly what was missed: no gap, and the message list ignores a seq it already shows.

import { socket } from './session.js';
import { store } from './store.js';

/** @param {import('./types.js').Room} r */
export function join(r) {
  if (socket.send({ type: 'join', room: r.id, since: r.seen })) r.joining = true;
}

/** After every `hello` and every room list load: joins each member room not yet joined. */
export function rejoinAll() {
  if (!socket.ready) return;
  const { rooms, current } = store.state;
  for (const r of rooms.values()) {
    if ((r.member || r.id === current) && !r.joined && !r.joining) join(r);
  }
}
