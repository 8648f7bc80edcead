// @ts-check
// mentions.js — `@name` in a message body, marked as a mention (more strongly when it names the
// user). A mention starts a word and runs over the letters, digits and `_` a username has, as the
// server reads it; the server decides who is notified (members only).

import { el, visibleText } from '../../core/dom.js';
import { store } from '../../core/store.js';

const MENTION = /(^|[^A-Za-z0-9_])@([A-Za-z0-9_]+)/g;

/**
 * Plain text (no links) with each `@name` in a mark of its own.
 * @param {string} text
 * @returns {DocumentFragment}
 */
export function withMentions(text) {
  const me = store.state.me?.username.toLowerCase();
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(MENTION)) {
    const start = m.index + m[1].length, end = start + 1 + m[2].length;
    if (start > last) frag.append(visibleText(text.slice(last, start)));
    const mine = m[2].toLowerCase() === me;
    const mark = el('span', mine ? 'mention me' : 'mention', text.slice(start, end));
    if (mine) mark.title = 'Mentions you';
    frag.append(mark);
    last = end;
  }
  if (last < text.length) frag.append(visibleText(text.slice(last)));
  return frag;
}

/** Whether `body` mentions the signed-in user. @param {string} body */
export function mentionsMe(body) {
  const me = store.state.me?.username.toLowerCase();
  if (!me) return false;
  for (const m of body.matchAll(MENTION)) if (m[2].toLowerCase() === me) return true;
  return false;
}
