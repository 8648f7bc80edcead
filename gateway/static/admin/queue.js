// @ts-check
// queue.js — the moderation queue across rooms (GET /api/admin/queue): reports, held messages
// and automatic flags, open ones or all, each decided in place (a mute or ban with a reason and
// how long, a reject with a reason for its sender, through the panel's dialog).

import { api } from '../core/api.js';
import { $, field, showText } from '../core/dom.js';
import { queueItem, queueError } from '../features/moderation/queue.js';
import { ask } from './dialog.js';

/**
 * A mute or ban from the queue, through the panel's dialog: a reason, and minutes (a mute) or
 * an optional end (a ban; none: until lifted).
 * @type {import('../features/moderation/queue.js').AskSanction}
 */
const askSanction = ({ title, ok, kind, run }) => new Promise((resolve) => {
  ask({
    title, ok, reason: 'optional', minutes: kind === 'mute', expiry: kind === 'ban',
    run: async (a) => {
      const minutes = kind === 'mute' ? a.minutes || null : a.expires_at ? Math.max(1, Math.ceil((a.expires_at - Date.now()) / 60_000)) : null;
      await run({ reason: a.reason, minutes });
      resolve(true);
    },
  });
});

let token = 0;

export function startQueue() {
  $('queue-refresh').addEventListener('click', load);
  field('queue-status').addEventListener('change', load);
  return { show: load };
}

async function load() {
  const my = ++token;
  try {
    const page = await api('GET', `/api/admin/queue?status=${encodeURIComponent(field('queue-status').value)}`);
    if (my !== token) return;
    /** @type {import('../features/moderation/queue.js').QueueItem[]} */
    const items = page.items ?? [];
    const list = $('queue-list');
    list.replaceChildren(...items.map((it) => {
      const li = queueItem(it, (updated) => li.replaceWith(queueItem(updated, () => load(), askSanction)), askSanction);
      return li;
    }));
    $('queue-empty').hidden = items.length > 0;
    showText('queue-error', '');
  } catch (e) {
    showText('queue-error', queueError(e));
  }
}
