// @ts-check
// queue.js — a moderation queue item as staff see it (the admin panel's queue across rooms and a
// room's own queue in its info panel): what was reported, held or flagged, by and about whom,
// the context around it, its status, and the decisions left to take on an open one
// (POST /api/rooms/{room}/queue/{item}/decision; a mute or ban asks a reason and how long, a
// reject a reason for the sender, through the page's own dialog, `ask`). A held message's attachments are listed as links.
// Names and bodies are text only.

import { api } from '../../core/api.js';
import { el, fullDate, humanError } from '../../core/dom.js';

/**
 * @typedef {{id: number, kind: string, room: number, room_name?: string, seq?: number | null,
 *   reporter?: string | {username: string} | null, sender?: string | {username: string} | null,
 *   reason?: string, body?: string | null, context?: Array<{seq: number, sender?: string | {username: string}, body?: string}>,
 *   status: string, created_at: number, decided_by?: string | {username: string} | null, decided_at?: number | null, decision_reason?: string | null,
 *   attachments?: Array<{id: string, name: string, url: string, mime?: string, size?: number}>}} QueueItem
 * @typedef {(what: {title: string, ok: string, kind: 'mute' | 'ban' | 'reject',
 *   run: (a: {reason: string, minutes: number | null}) => Promise<unknown>}) => Promise<boolean>} AskSanction
 */

/** A name the server gives as text or as a user. @param {unknown} who */
export const nameOf = (who) => (who == null ? '' : typeof who === 'string' ? who : /** @type {{username: string}} */ (who).username ?? '');

/** The decisions an open item of `kind` allows. @param {string} kind */
function decisions(kind) {
  return kind === 'held'
    ? [['release', 'Release'], ['reject', 'Reject'], ['mute', 'Mute sender'], ['ban', 'Ban sender']]
    : [['dismiss', 'Dismiss'], ['delete', 'Delete message'], ['mute', 'Mute sender'], ['ban', 'Ban sender']];
}

/**
 * One item as a list entry; `decided` gets the updated item after a decision; `ask` asks the
 * reason and duration of a mute or ban.
 * @param {QueueItem} item
 * @param {(updated: QueueItem) => void} decided
 * @param {AskSanction} ask
 */
export function queueItem(item, decided, ask) {
  const li = el('li', 'queue-item');
  li.dataset.item = String(item.id);
  li.dataset.kind = item.kind;
  li.dataset.status = item.status;
  const head = el('div', 'q-head');
  const where = item.room_name ? `#${item.room_name}` : `room ${item.room}`;
  head.append(el('span', 'tag', item.kind), el('span', 'q-room', where), el('span', 'q-status', item.status));
  if (item.seq != null) head.append(el('span', null, `message ${item.seq}`));
  if (item.sender) head.append(el('span', 'q-sender', `by ${nameOf(item.sender)}`));
  if (item.reporter) head.append(el('span', 'q-reporter', `reported by ${nameOf(item.reporter)}`));
  head.append(el('span', null, fullDate(item.created_at)));
  li.append(head);
  if (item.body) li.append(el('div', 'q-body', item.body));
  if (item.attachments?.length) {
    const files = el('div', 'q-attachments');
    for (const a of item.attachments) {
      const link = /** @type {HTMLAnchorElement} */ (el('a', 'q-attachment', `📎 ${a.name}`));
      link.href = a.url;
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      files.append(link);
    }
    li.append(files);
  }
  if (item.reason) li.append(el('div', 'q-reason', `Reason: ${item.reason}`));
  if (item.context?.length) {
    const ctx = el('div', 'q-context');
    for (const c of item.context) ctx.append(el('div', null, `${nameOf(c.sender)}: ${c.body ?? ''}`));
    li.append(ctx);
  }
  if (item.status !== 'open') {
    if (item.decided_by) li.append(el('div', 'note', `${item.status} by ${nameOf(item.decided_by)}${item.decided_at ? `, ${fullDate(item.decided_at)}` : ''}${item.decision_reason ? `: ${item.decision_reason}` : ''}`));
    return li;
  }
  const acts = el('div', 'q-acts');
  const error = el('p', 'form-error');
  error.setAttribute('role', 'alert');
  error.hidden = true;
  for (const [action, label] of decisions(item.kind)) {
    const b = /** @type {HTMLButtonElement} */ (el('button', `q-${action}`, label));
    b.type = 'button';
    b.dataset.action = action;
    /** @param {{reason?: string, minutes?: number | null}} extra */
    const decide = async (extra) => {
      const updated = await api('POST', `/api/rooms/${item.room}/queue/${item.id}/decision`, { action, ...extra });
      decided({ ...item, ...updated });
    };
    b.addEventListener('click', async () => {
      if (action === 'reject') {
        const who = nameOf(item.sender) || 'the sender';
        await ask({
          title: `Reject this message of ${who}? It is never posted; ${who} is told, with your reason if you give one.`,
          ok: 'Reject',
          kind: 'reject',
          run: ({ reason }) => decide({ reason: reason || undefined }),
        });
        return;
      }
      if (action === 'mute' || action === 'ban') {
        const who = nameOf(item.sender) || 'the sender';
        const where = item.room_name ? `#${item.room_name}` : 'this room';
        await ask({
          title: action === 'mute' ? `Mute ${who} in ${where}` : `Ban ${who} from ${where}`,
          ok: action === 'mute' ? 'Mute' : 'Ban',
          kind: action,
          run: ({ reason, minutes }) => decide({ reason: reason || undefined, minutes: minutes ?? undefined }),
        });
        return;
      }
      for (const x of acts.querySelectorAll('button')) /** @type {HTMLButtonElement} */ (x).disabled = true;
      try {
        await decide({});
      } catch (e) {
        error.textContent = humanError(e.code, e.message);
        error.hidden = false;
        for (const x of acts.querySelectorAll('button')) /** @type {HTMLButtonElement} */ (x).disabled = false;
      }
    });
    acts.append(b);
  }
  li.append(acts, error);
  return li;
}

/**
 * A queue's error as staff read it: a server without the queue routes answers 404.
 * @param {any} e
 */
export function queueError(e) {
  if (e?.status === 404 && e?.code !== 'not_found') return 'This server has no moderation queue yet.';
  return humanError(e?.code, e?.message);
}
