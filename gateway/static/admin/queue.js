// @ts-check
// queue.js — the moderation queue across rooms (GET /api/admin/queue): reports, held messages
// and automatic flags, open ones or all, each decided in place.

import { api } from '../core/api.js';
import { $, field, showText } from '../core/dom.js';
import { queueItem, queueError } from '../features/moderation/queue.js';

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
      const li = queueItem(it, (updated) => li.replaceWith(queueItem(updated, () => load())));
      return li;
    }));
    $('queue-empty').hidden = items.length > 0;
    showText('queue-error', '');
  } catch (e) {
    showText('queue-error', queueError(e));
  }
}
