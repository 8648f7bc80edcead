// @ts-check
// stats.js — cluster-wide statistics: the site's figures (from storage) and each live node's
// own counters (published by every node in gossip), refreshed every few seconds while shown.

import { api } from '../core/api.js';
import { $, el, count, humanError, showText, timeOfDay } from '../core/dom.js';

const EVERY_MS = 3000;
let timer = 0;

export function startStats() {
  return {
    show: () => { load(); clearInterval(timer); timer = setInterval(load, EVERY_MS); },
    hide: () => clearInterval(timer),
  };
}

async function load() {
  try {
    const s = await api('GET', '/api/admin/stats');
    /** @type {[string, string, number][]} */
    const figures = [
      ['users', 'Users', s.users], ['online', 'Online now', s.online], ['messages_total', 'Messages in total', s.messages_total],
      ['messages_today', 'Messages today', s.messages_today], ['banned', 'Banned', s.banned], ['muted', 'Muted', s.muted],
    ];
    $('stats-site').replaceChildren(...figures.map(([key, label, n]) => {
      const d = el('div');
      d.dataset.stat = key;
      d.append(el('dt', null, label), el('dd', null, count(Number(n) || 0)));
      return d;
    }));
    /** @type {Array<{id: string, addr?: string | null, status?: string, connections: number, rooms_owned: number, messages_per_second: number, this_node?: boolean}>} */
    const nodes = s.nodes ?? [];
    $('stats-nodes').replaceChildren(...nodes.map((n) => {
      const tr = el('tr');
      tr.dataset.node = n.id;
      tr.append(el('td', null, n.id + (n.this_node ? ' (this node)' : '')), el('td', null, n.addr ?? '—'), el('td', null, n.status ?? ''),
        el('td', 'connections', count(n.connections)), el('td', 'rooms-owned', count(n.rooms_owned)),
        el('td', 'mps', count(n.messages_per_second)));
      return tr;
    }));
    $('stats-updated').textContent = `Updated ${timeOfDay(Date.now())}`;
    showText('stats-error', '');
  } catch (e) {
    showText('stats-error', humanError(e.code, e.message));
  }
}
