// @ts-check
// manage.js — what the room info panel lets a user do to a room: its owner (or an admin)
// renames and describes it, adds members to a private room, removes members, hands it to another
// member, and deletes it; a member leaves it. Each is a REST call; what it changes reaches every
// member, this user included, as the room's `system` event (events.js), so the panel, the
// header and the list follow the events rather than the calls' answers.

import { $, field, el, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { confirmAction } from '../../core/confirm.js';
import { endedBy } from '../../core/session.js';
import { store, currentRoom } from '../../core/store.js';
import { dropRoom } from './events.js';

/** @typedef {import('../../core/types.js').Room} Room */
/** @typedef {import('../../core/types.js').User} User */

/** The room's owner, or an admin. @param {Room} room */
export function canManage(room) {
  const me = store.state.me;
  if (!me || room.system || room.kind === 'dm') return false;
  return me.role === 'admin' || (room.owner_id != null && room.owner_id === me.id);
}

// The rename form keeps what the user is typing: it takes the room's name and description only
// when it opens, or while the user has not touched it.
let editDirty = false;
/** @param {Room} room @param {boolean} reset */
export function fillEditForm(room, reset) {
  if (reset) editDirty = false;
  if (editDirty) return;
  field('room-edit-name').value = room.name;
  field('room-edit-desc').value = room.description || '';
}

/**
 * Runs a REST call for `button`, showing its error in `errorId`.
 * @param {HTMLButtonElement | null} button
 * @param {string} errorId
 * @param {() => Promise<void>} call
 */
async function attempt(button, errorId, call) {
  showText(errorId, '');
  if (button) button.disabled = true;
  try { await call(); } catch (e) {
    if (!endedBy(e)) showText(errorId, humanError(e.code, e.message));
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * The buttons beside a member, for the room's owner: remove them, make them the owner.
 * @param {Room} room
 * @param {User} m
 */
export function memberActions(room, m) {
  const remove = /** @type {HTMLButtonElement} */ (el('button', 'member-act member-remove', 'Remove'));
  remove.type = 'button';
  remove.setAttribute('aria-label', `Remove ${m.username} from the room`);
  remove.addEventListener('click', async () => {
    const yes = await confirmAction({
      title: `Remove ${m.username}?`,
      text: `${m.username} will no longer be a member of ${room.name}${room.visibility === 'private' ? ' and will not see it any more' : ''}.`,
      action: 'Remove',
    });
    if (yes) attempt(remove, 'members-error', () => api('DELETE', `/api/rooms/${room.id}/members/${m.id}`));
  });
  const owner = /** @type {HTMLButtonElement} */ (el('button', 'member-act member-owner', 'Make owner'));
  owner.type = 'button';
  owner.setAttribute('aria-label', `Make ${m.username} the owner of the room`);
  owner.addEventListener('click', async () => {
    const yes = await confirmAction({
      title: `Make ${m.username} the owner?`,
      text: `${m.username} will own ${room.name}: they can rename it, manage its members and delete it. You will no longer be its owner.`,
      action: 'Transfer',
    });
    if (yes) attempt(owner, 'members-error', () => api('POST', `/api/rooms/${room.id}/owner`, { username: m.username }));
  });
  return [owner, remove];
}

/** @param {{reload: () => void}} hooks  `reload`: fetch the panel's members again */
export function wireManage({ reload }) {
  for (const id of ['room-edit-name', 'room-edit-desc']) $(id).addEventListener('input', () => { editDirty = true; });
  $('room-edit').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = currentRoom();
    if (!room) return;
    const name = field('room-edit-name').value.trim(), description = field('room-edit-desc').value.trim();
    if (!name) return showText('room-edit-error', 'Give the room a name.');
    /** @type {{name?: string, description?: string}} */
    const change = {};
    if (name !== room.name) change.name = name;
    if (description !== (room.description || '')) change.description = description;
    if (!Object.keys(change).length) return;
    attempt(/** @type {HTMLButtonElement} */ ($('room-edit-save')), 'room-edit-error', async () => {
      await api('PATCH', `/api/rooms/${room.id}`, change);
      editDirty = false;
      /** @type {HTMLDetailsElement} */ ($('room-edit-box')).open = false;
    });
  });

  $('add-member').addEventListener('submit', (e) => {
    e.preventDefault();
    const room = currentRoom(), username = field('add-member-name').value.trim();
    if (!room || !username) return;
    attempt(null, 'add-member-error', async () => {
      await api('POST', `/api/rooms/${room.id}/members`, { username });
      field('add-member-name').value = '';
      reload();
    });
  });

  $('leave-room').addEventListener('click', async () => {
    const room = currentRoom();
    if (!room) return;
    const yes = await confirmAction({
      title: `Leave ${room.name}?`,
      text: room.visibility === 'private'
        ? 'It will leave your room list, and only its owner can add you again.'
        : 'You will stop getting its messages. It is public: you can join it again from the room list.',
      action: 'Leave',
    });
    if (!yes) return;
    attempt(/** @type {HTMLButtonElement} */ ($('leave-room')), 'room-danger-error', async () => {
      await api('POST', `/api/rooms/${room.id}/leave`);
      dropRoom(room.id, { note: `You left ${room.name}.` });
    });
  });

  $('delete-room').addEventListener('click', async () => {
    const room = currentRoom();
    if (!room) return;
    const yes = await confirmAction({
      title: `Delete ${room.name}?`,
      text: 'The room and all its messages will be deleted for everyone. This cannot be undone.',
      action: 'Delete room',
    });
    if (!yes) return;
    attempt(/** @type {HTMLButtonElement} */ ($('delete-room')), 'room-danger-error', async () => {
      await api('DELETE', `/api/rooms/${room.id}`);
      dropRoom(room.id, { gone: true, note: `You deleted ${room.name}.` });
    });
  });
}
