// dom.js — small DOM helpers, the safe link-ifier, time formats and error texts.
// Untrusted text (bodies, names, descriptions) only ever becomes text nodes: never innerHTML.

export const $ = (id) => document.getElementById(id);

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
}

export function showText(id, text) {
  const e = $(id);
  e.textContent = text || '';
  e.hidden = !text;
}

// Characters that make text pose as other text: direction overrides and isolates, zero-width and
// other invisible ones (the server refuses them in names; bodies keep them, shown visibly).
const DECEPTIVE = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF9-\uFFFB\u{1D173}-\u{1D17A}\u{E0000}-\u{E007F}]/gu;
const codePoint = (c) => 'U+' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');

// A string with each deceptive character written out as ⟨U+202E⟩.
export const revealed = (text) => String(text).replace(DECEPTIVE, (c) => `⟨${codePoint(c)}⟩`);

// Text as nodes, each deceptive character shown as a marked ⟨U+XXXX⟩ instead of acting.
export function visibleText(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(DECEPTIVE)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    const mark = el('span', 'hidden-char', `⟨${codePoint(m[0])}⟩`);
    mark.title = `invisible character ${codePoint(m[0])}`;
    frag.append(mark);
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?)\]}'"]+$/;

// Text with http(s) links made clickable: a fragment of text nodes and <a> elements. Anything
// that does not parse as an http or https URL stays plain text. Deceptive characters show.
export function linkify(text) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, -trail[0].length);
    let url = null;
    try { url = new URL(raw); } catch { url = null; }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (m.index > last) frag.append(visibleText(text.slice(last, m.index)));
    // The link's text shows what it holds; its address is the parsed, percent-encoded one.
    const a = el('a', null, revealed(raw));
    a.href = url.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    frag.append(a);
    last = m.index + raw.length;
  }
  if (last < text.length) frag.append(visibleText(text.slice(last)));
  return frag;
}

const pad = (n) => String(n).padStart(2, '0');
export const hhmm = (ts) => { const d = new Date(ts); return `${pad(d.getHours())}:${pad(d.getMinutes())}`; };

// "Today", "Yesterday" or a date, for day separators and the room list.
export function dayLabel(ts) {
  const d = new Date(ts), today = new Date();
  const days = Math.round((new Date(today.toDateString()) - new Date(d.toDateString())) / 86400000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: d.getFullYear() === today.getFullYear() ? undefined : 'numeric' });
}

export const shortTime = (ts) => (dayLabel(ts) === 'Today' ? hhmm(ts) : dayLabel(ts));

export const newCid = () => (typeof crypto.randomUUID === 'function'
  ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2));

// What a person reads for a protocol or REST error code; the server's own message otherwise.
const HUMAN = {
  rate_limited: 'You are sending messages too fast. Wait a moment, then try again.',
  too_long: 'This message is too long. Shorten it and send it again.',
  empty_body: 'An empty message cannot be sent.',
  not_member: 'You are not a member of this room.',
  unknown_room: 'This room no longer exists.',
  forbidden: 'You are not allowed to do that.',
  too_many_rooms: 'You have joined too many rooms at once.',
  too_many_connections: 'Too many open connections from this network.',
  weak_password: 'That password is too easy to guess. Choose a longer one, such as a few unrelated words.',
  reauth_required: 'Sign in again (or use a new email code) to do that.',
  auth_failed: 'Wrong username or password.',
  code_expired: 'This code has expired. Ask for a new one.',
  too_many_attempts: 'Too many attempts. Wait a little, then try again.',
  conflict: 'That name is already taken.',
  internal: 'Something went wrong on the server. Try again.',
};

export function humanError(code, message) {
  if (code === 'invalid' || code === 'conflict' || code === 'weak_password') return message || HUMAN[code];
  return HUMAN[code] || message || 'Something went wrong.';
}
