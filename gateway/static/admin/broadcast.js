// @ts-check
// broadcast.js — an announcement to every signed-in user on every node, shown as a banner in
// their app until they dismiss it (or it ends).

import { api } from '../core/api.js';
import { $, field, humanError, showText } from '../core/dom.js';

export function startBroadcast() {
  $('broadcast-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = field('broadcast-body').value.trim();
    if (!body) return showText('broadcast-error', 'Write the announcement first.');
    const hours = Number(field('broadcast-hours').value) || 24;
    const send = /** @type {HTMLButtonElement} */ ($('broadcast-send'));
    send.disabled = true;
    try {
      await api('POST', '/api/admin/broadcasts', { body, expires_at: Date.now() + hours * 3600 * 1000 });
      field('broadcast-body').value = '';
      showText('broadcast-done', 'Sent to everyone signed in.');
      showText('broadcast-error', '');
    } catch (err) {
      showText('broadcast-error', humanError(err.code, err.message));
      showText('broadcast-done', '');
    } finally {
      send.disabled = false;
    }
  });
  return { show: () => field('broadcast-body').focus() };
}
