// @ts-check
// types.js — the shapes the modules share, as JSDoc types (checked by `tsc --noEmit`; this file
// exports nothing at run time).

/**
 * A user as the server names them; `display_name` when it has one (may be empty), and on `me`
 * (GET /api/me) their own `status` and `dm_policy`.
 * @typedef {{id: number, username: string, role?: string, display_name?: string, status?: string,
 *   dm_policy?: string}} User
 */

/**
 * A profile (GET /api/users): `online` and `last_seen` (ms) are cluster-wide; `blocked` says
 * whether the viewer blocked them.
 * @typedef {{id: number, username: string, display_name?: string, status?: string, online?: boolean,
 *   last_seen?: number | null, created_at?: number | string, blocked?: boolean}} Profile
 */

/** A room's newest message as an `activity` frame previews it. @typedef {{seq: number, from: User, body: string, ts: number}} ActivityLast */

/**
 * A file a message carries, as `message` frames, history and GET /api/rooms/{room}/attachments/{id}
 * give it. `url` and `thumb_url` are signed and expire (`?exp=<unix s>&sig=…`); `width`/`height`
 * for an image (its shown size: known before it loads), `thumb_url` when it has a thumbnail,
 * `duration_ms` for a voice note or audio. A send of one's own shows it before the server has
 * signed anything: then `url` may be a local `blob:` URL, or absent.
 * @typedef {{id: string, name: string, size: number, mime: string, kind: AttachmentKind, url?: string,
 *   width?: number, height?: number, thumb_url?: string, duration_ms?: number}} Attachment
 */

/** What the server made of an upload's bytes. @typedef {'image' | 'voice' | 'audio' | 'file'} AttachmentKind */

/**
 * POST /api/uploads's answer: the stored upload, to name in a send's `attachments`.
 * @typedef {{id: string, name: string, size: number, mime: string, kind: AttachmentKind,
 *   width?: number, height?: number, duration_ms?: number}} Upload
 */

/**
 * A message as REST and the socket give it (`seq` is its place in the room); `attachments` only
 * when it carries files (its body may then be empty).
 * @typedef {{room: number, seq: number, id?: string, from?: User | null, body?: string,
 *   ts?: number | string, reply_to?: number | null, deleted?: boolean, edited?: boolean,
 *   edited_at?: number | string | null, attachments?: Attachment[]}} Message
 */

/**
 * A change to a room, an event of its sequence (`system` frames): `op` says which, with its fields.
 * @typedef {{op: string, user?: User, name?: string, description?: string, owner?: User,
 *   [key: string]: any}} SystemEvent
 */

/**
 * A room of the list: the REST fields plus what this client tracks (see `roomFrom`). `kind` is
 * `dm` for a direct message (then `members` are its people and `name` is empty), `stranger` for a
 * stranger chat (`you`: how one is shown there), else `room`.
 * @typedef {{id: number, name: string, kind?: string, description?: string, visibility?: string,
 *   owner_id?: number | null, system?: boolean, created_at?: number | string, member?: boolean,
 *   head_seq?: number, listed_head?: number, read_seq?: number, unread?: number, mentions?: number,
 *   last?: Message | null, members?: Array<User & {role?: string}>,
 *   seen: number, joined: boolean, joining: boolean, online: Map<number, string>,
 *   onlineExtra: number, you?: User}} Room
 */

/** @typedef {'connecting' | 'online' | 'reconnecting' | 'offline'} Status */

/** Where to open a room: at message `seq` (a search result), not at its newest page. @typedef {{room: number, seq: number}} Target */

/**
 * The app's state: the store's topics are its keys. `inbox` is the user's inbox id (from `hello`;
 * null with a server older than protocol 3). `people` are the profiles met so far, by user id;
 * `blocks` the users this user blocked (id -> username); `target` a message to open the current
 * room at, until the chat has opened it.
 * @typedef {{me: User | null, rooms: Map<number, Room>, current: number | null, inbox: number | null,
 *   status: Status, limits: {max_body_chars: number}, people: Map<number, Profile>,
 *   blocks: Map<number, string>, target: Target | null}} AppState
 */

/** A frame from the server: a `type` and what that type carries. @typedef {{type: string, [key: string]: any}} Frame */

export {};
