// state.js — the client's state, shared by the modules: who is signed in, the rooms this user
// sees (with what was last received in each, for resuming), the open room, unacknowledged sends.

export const state = {
  me: null,              // {id, username, role}
  rooms: new Map(),      // id -> room, see `roomFrom`
  current: null,         // id of the open room
  pending: new Map(),    // cid -> {frame, el}: sent, not yet acknowledged
  replyTo: null,         // {seq, name, body} while composing a reply
};

// A room of the list: the REST fields plus what this client tracks.
export function roomFrom(r) {
  return {
    ...r,
    seen: r.head_seq || 0,      // highest seq received: rejoin with since = seen
    joined: false,              // a `joined` answer on the current socket
    joining: false,             // a `join` sent, not yet answered
    online: new Map(),          // user id -> username
    onlineExtra: 0,             // online users the capped `joined` list left out
  };
}

export const currentRoom = () => (state.current == null ? null : state.rooms.get(state.current) || null);
export const isMe = (user) => !!state.me && !!user && user.id === state.me.id;
