// @ts-check
// dialog.js — the new-room dialog: name, description, public or private.

import { $, field, showText, humanError } from '../../core/dom.js';
import { api } from '../../core/api.js';

/**
 * Wires the dialog; `onCreated(room)` gets the room the server made.
 * @param {(room: any) => void} onCreated
 */
export function wireRoomDialog(onCreated) {
  const dlg = /** @type {HTMLDialogElement} */ ($('room-dialog'));
  const form = /** @type {HTMLFormElement} */ ($('room-form'));
  const create = /** @type {HTMLButtonElement} */ ($('room-create'));
  $('new-room').addEventListener('click', () => {
    form.reset();
    showText('room-error', '');
    dlg.showModal();
    $('room-name').focus();
  });
  $('room-cancel').addEventListener('click', () => dlg.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = field('room-name').value.trim();
    if (!name) return showText('room-error', 'Give the room a name.');
    const visibility = /** @type {RadioNodeList} */ (form.elements.namedItem('visibility')).value || 'public';
    create.disabled = true;
    showText('room-error', '');
    try {
      const room = await api('POST', '/api/rooms', { name, description: field('room-desc').value.trim(), visibility });
      dlg.close();
      onCreated(room);
    } catch (err) {
      showText('room-error', humanError(err.code, err.message));
    } finally {
      create.disabled = false;
    }
  });
}
