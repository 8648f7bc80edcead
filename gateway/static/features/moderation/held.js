// @ts-check
// held.js — a send the room holds for review (pre-moderation): the `held` frame marks it as
// waiting for review (it stays with the pending sends, and the normal `ack` ends it when a
// moderator releases it); `rejected` marks it as refused by the moderators, with their reason.

import { onFrame } from '../../core/frames.js';
import { sentence } from '../../core/dom.js';
import { holdPending, rejectPending } from '../chat/compose.js';

export function startHeld() {
  onFrame('held', (f) => holdPending(f.cid));
  onFrame('rejected', (f) => rejectPending(f.cid, f.reason ? `Rejected by the room's moderators: ${sentence(f.reason)}` : 'Rejected by the room\'s moderators.'));
}
