// @ts-check
// blocked.js — how a blocked user's message looks in a shared room: collapsed to one quiet line
// ("Message from a blocked user — show"), its body and name left out until the reader asks for
// it; and a reply's quote of such a message. Whom the user blocked is core/people.js's.

import { el } from '../../core/dom.js';

/**
 * The body of a collapsed message `m`; `reveal` shows it in full.
 * @param {Partial<import('../../core/types.js').Message>} m
 * @param {() => void} reveal
 */
export function collapsedBody(m, reveal) {
  const body = el('div', 'body blocked-note', m.deleted ? 'This message was deleted.' : 'Message from a blocked user — ');
  if (!m.deleted) {
    const show = /** @type {HTMLButtonElement} */ (el('button', 'link-btn show-blocked', 'show'));
    show.type = 'button';
    show.setAttribute('aria-label', 'Show the message from a blocked user');
    show.addEventListener('click', reveal);
    body.append(show);
  }
  return body;
}

/** A reply's quote of a blocked user's message: who and what are left out. @param {HTMLElement} q */
export function blockedQuote(q) {
  /** @type {HTMLElement} */ (q.querySelector('.q-from')).textContent = 'Blocked user';
  /** @type {HTMLElement} */ (q.querySelector('.q-body')).textContent = 'Message from a blocked user';
  q.setAttribute('aria-label', 'Reply to a message from a blocked user');
}
