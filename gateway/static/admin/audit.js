// @ts-check
// audit.js — the audit log, newest first, filtered by who acted, on whom and which action,
// paged backwards ("Older").

import { api } from '../core/api.js';
import { $, el, field, fullDate, humanError, showText } from '../core/dom.js';

/** @type {number | null} */
let before = null;
let token = 0;

export function startAudit() {
  $('audit-form').addEventListener('submit', (e) => { e.preventDefault(); load(true); });
  $('audit-more').addEventListener('click', () => load(false));
  return { show: () => load(true) };
}

/** @param {boolean} fresh */
async function load(fresh) {
  const my = ++token;
  if (fresh) before = null;
  const q = new URLSearchParams();
  for (const [key, id] of [['actor', 'audit-actor'], ['target', 'audit-target'], ['action', 'audit-action']]) {
    const v = field(id).value.trim();
    if (v) q.set(key, v);
  }
  if (before != null) q.set('before', String(before));
  try {
    const page = await api('GET', `/api/admin/audit?${q}`);
    if (my !== token) return;
    const body = $('audit-body');
    if (fresh) body.replaceChildren();
    for (const e of page.entries) {
      const tr = el('tr');
      tr.dataset.action = e.action;
      const detail = typeof e.detail === 'string' ? e.detail : JSON.stringify(e.detail);
      tr.append(el('td', null, fullDate(e.at)), el('td', 'actor', e.actor?.username ?? '—'), el('td', 'action', e.action),
        el('td', 'target', e.target?.username ?? (e.room != null ? `room ${e.room}` : '—')), el('td', 'detail', detail));
      body.append(tr);
    }
    before = page.next_before;
    $('audit-more').hidden = page.next_before == null;
    showText('audit-error', '');
  } catch (e) {
    showText('audit-error', humanError(e.code, e.message));
  }
}
