// @ts-check
// system.js — what a room's `system` event says, as a sentence for its quiet line in the
// message list ("alice renamed the room to “plans”"). The user's own actions say "You".

import { isMe } from '../../core/store.js';

/** @typedef {import('../../core/types.js').User} User */

/** @param {User | null | undefined} u */
const who = (u) => (isMe(u) ? 'You' : u?.username ?? 'Someone');
/** The same, inside a sentence. @param {User | null | undefined} u */
const whom = (u) => (isMe(u) ? 'you' : u?.username ?? 'someone');

/**
 * The sentence for a `system` frame.
 * @param {import('../../core/types.js').Frame} f
 */
export function systemText(f) {
  const by = f.by, e = f.event || {};
  const same = !!by && !!e.user && by.id === e.user.id;
  switch (e.op) {
    case 'member_added': return same ? `${who(e.user)} joined` : `${who(by)} added ${whom(e.user)}`;
    case 'member_left': return `${who(e.user)} left the room`;
    case 'member_removed': return `${who(by)} removed ${whom(e.user)}`;
    case 'renamed': return `${who(by)} renamed the room to “${e.name}”`;
    case 'described': return e.description
      ? `${who(by)} changed the description to “${e.description}”`
      : `${who(by)} removed the description`;
    case 'owner_changed': return `${who(by)} made ${whom(e.owner)} the owner`;
    default: return `${who(by)} changed the room`;
  }
}
