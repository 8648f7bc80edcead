// @ts-check
// types.js — the shapes the modules share, as JSDoc types (checked by `tsc --noEmit`; this file
// exports nothing at run time).

/** @typedef {{id: number, username: string, role?: string}} User */

/** A room's newest message as an `activity` frame previews it. @typedef {{seq: number, from: User, body: string, ts: number}} ActivityLast */

/**
 * A message as REST and the socket give it (`seq` is its place in the room).
 * @typedef {{room: number, seq: number, id?: string, from?: User | null, body?: string,
 *   ts?: number | string, reply_to?: number | null, deleted?: boolean, edited?: boolean,
 *   edited_at?: number | string | null}} Message
 */

/**
 * A change to a room, an event of its sequence (`system` frames): `op` says which, with its fields.
 * @typedef {{op: string, user?: User, name?: string, description?: string, owner?: User,
 *   [key: string]: any}} SystemEvent
 */

/**
 * A room of the list: the REST fields plus what this client tracks (see `roomFrom`).
 * @typedef {{id: number, name: string, description?: string, visibility?: string,
 *   owner_id?: number | null, system?: boolean, created_at?: number | string, member?: boolean,
 *   head_seq?: number, listed_head?: number, read_seq?: number, unread?: number, mentions?: number,
 *   last?: Message | null, members?: Array<User & {role?: string}>,
 *   seen: number, joined: boolean, joining: boolean, online: Map<number, string>,
 *   onlineExtra: number}} Room
 */

/** @typedef {'connecting' | 'online' | 'reconnecting' | 'offline'} Status */

/**
 * The app's state: the store's topics are its keys. `inbox` is the user's inbox id (from `hello`;
 * null with a server older than protocol 3).
 * @typedef {{me: User | null, rooms: Map<number, Room>, current: number | null, inbox: number | null,
 *   status: Status, limits: {max_body_chars: number}}} AppState
 */

/** A frame from the server: a `type` and what that type carries. @typedef {{type: string, [key: string]: any}} Frame */

export {};
