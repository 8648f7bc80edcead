// @ts-check
// store.js — the app's state and who watches it. A change names its topics (`rooms`, `current`,
// …); views subscribe to topics and re-render once per task, however many changes were made.
// Nothing else renders by hand.

/** @typedef {import('./types.js').AppState} AppState */
/** @typedef {import('./types.js').Room} Room */
/** @typedef {keyof AppState | 'presence'} Topic */

export class Store {
  /** @param {AppState} state */
  constructor(state) {
    this.state = state;
    /** @type {Map<Topic, Set<(s: AppState) => void>>} */
    this.subs = new Map();
    /** @type {Set<Topic>} */
    this.dirty = new Set();
    this.scheduled = false;
  }

  /**
   * Changes the state in `change` (if given) and tells the subscribers of `topics` (batched).
   * @param {Topic | Topic[]} topics
   * @param {(s: AppState) => void} [change]
   */
  update(topics, change) {
    change?.(this.state);
    for (const t of [topics].flat()) this.dirty.add(t);
    if (this.scheduled) return;
    this.scheduled = true;
    queueMicrotask(() => this.flush());
  }

  /** Tells the subscribers of every changed topic now (each subscriber once). */
  flush() {
    this.scheduled = false;
    const fns = new Set();
    for (const t of this.dirty) for (const fn of this.subs.get(t) ?? []) fns.add(fn);
    this.dirty.clear();
    for (const fn of fns) fn(this.state);
  }

  /**
   * Calls `fn(state)` after each change of one of `topics`; returns the unsubscribe function.
   * @param {Topic | Topic[]} topics
   * @param {(s: AppState) => void} fn
   */
  subscribe(topics, fn) {
    for (const t of [topics].flat()) {
      if (!this.subs.has(t)) this.subs.set(t, new Set());
      this.subs.get(t)?.add(fn);
    }
    return () => { for (const t of [topics].flat()) this.subs.get(t)?.delete(fn); };
  }
}

/** The one store of the app. */
export const store = new Store({
  me: null,
  rooms: new Map(),
  current: null,
  inbox: null,
  status: 'connecting',
  limits: { max_body_chars: 4000 },
  people: new Map(),
  blocks: new Map(),
  target: null,
});

/**
 * A room of the list from its REST fields, plus what this client tracks.
 * @param {any} r
 * @returns {Room}
 */
export function roomFrom(r) {
  const head = r.head ?? r.head_seq ?? 0;
  return {
    ...r,
    head_seq: head,
    listed_head: head,          // the head when the room list (REST) last counted its unread and mentions
    unread: r.unread || 0,
    mentions: r.mentions || 0,
    seen: head,                 // highest seq received: rejoin with since = seen
    joined: false,              // a `joined` answer on the current socket
    joining: false,             // a `join` sent, not yet answered
    online: new Map(),          // user id -> username
    onlineExtra: 0,             // online users the capped `joined` list left out
  };
}

/** @returns {Room | null} */
export const currentRoom = () => {
  const s = store.state;
  return s.current == null ? null : s.rooms.get(s.current) || null;
};

/** @param {{id: number} | null | undefined} user  Oneself (in a stranger chat, one's alias there). */
export const isMe = (user) => !!store.state.me && !!user
  && (user.id === store.state.me.id || (user.id < 0 && user.id === currentRoom()?.you?.id));

/**
 * Opens the room `id` (the views that show rooms follow `current`).
 * @param {number} id
 */
export function selectRoom(id) {
  if (!store.state.rooms.has(id) || store.state.current === id) return;
  store.update(['current', 'rooms'], (s) => { s.current = id; });
}

/**
 * Opens the room `id` at message `seq` (a search result), even when it is open already; false
 * when the room is not in the list.
 * @param {number} id
 * @param {number} seq
 */
export function openAt(id, seq) {
  if (!store.state.rooms.has(id)) return false;
  store.update(['current', 'rooms', 'target'], (s) => { s.current = id; s.target = { room: id, seq }; });
  return true;
}

/** @param {import('./types.js').User} u  A person's name to show: their display name, else their username. */
export const personName = (u) => {
  const known = store.state.people.get(u.id);
  return (known?.display_name || u.display_name || known?.username || u.username || '').trim() || 'someone';
};

/** @param {Room} r  The other people of a direct message (all of them when it is only oneself). */
export const dmOthers = (r) => {
  const all = r.members || [];
  const others = all.filter((m) => !isMe(m));
  return others.length ? others : all;
};

/**
 * What a room is called on screen: its name, or for a direct message its other people's names.
 * @param {Room} r
 */
export function roomTitle(r) {
  if (r.kind !== 'dm') return r.name;
  const names = dmOthers(r).map(personName);
  return names.length ? names.join(', ') : 'Direct message';
}
