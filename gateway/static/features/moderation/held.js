// @ts-check
// held.js — a send the room holds for review (pre-moderation): the `held` frame marks it as
// waiting for review (it stays with the pending sends, and the normal `ack` ends it when a
// moderator releases it, or the released `message` of ours when that ack went to an earlier
// socket); `rejected` marks it as refused by the moderators, with their reason.

import { onFrame } from '../../core/frames.js';
import { sentence } from '../../core/dom.js';
import { holdPending, rejectPending, settleHeld } from '../chat/compose.js';
import { isMe } from '../../core/store.js';

/** When the current socket said `hello`. */
let connectedAt = 0;

export function startHeld() {
  onFrame('hello', () => { connectedAt = Date.now(); });
  onFrame('held', (f) => holdPending(f.cid));
  onFrame('message', (f) => { if (f.from && isMe(f.from)) settleHeld(f.room, f.body ?? '', connectedAt); });
  onFrame('rejected', (f) => rejectPending(f.cid, f.reason ? `Rejected by the room's moderators: ${sentence(f.reason)}` : 'Rejected by the room\'s moderators.'));
}
