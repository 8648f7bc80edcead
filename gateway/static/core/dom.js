// @ts-check
// dom.js — small DOM helpers, the safe link-ifier, times and dates in the browser's locale, and
// error texts. Untrusted text (bodies, names, descriptions) only ever becomes text nodes: never
// innerHTML.

/** The element with this id (the views mounted it). @param {string} id @returns {HTMLElement} */
export const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * An input or textarea by id: what has a `value`.
 * @param {string} id
 * @returns {HTMLInputElement}
 */
export const field = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id));

/**
 * @param {string} tag
 * @param {string | null} [cls]
 * @param {unknown} [text]
 * @returns {HTMLElement}
 */
export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = String(text);
  return e;
}

/** Shows `text` in the element `id`, or hides it when empty. @param {string} id @param {string} [text] */
export function showText(id, text) {
  const e = $(id);
  e.textContent = text || '';
  e.hidden = !text;
}

// Characters that make text pose as other text: direction overrides and isolates, zero-width and
// other invisible ones (the server refuses them in names; bodies keep them, shown visibly).
const DECEPTIVE = /[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF9-\uFFFB\u{1D173}-\u{1D17A}\u{E0000}-\u{E007F}]/gu;
const codePoint = (/** @type {string} */ c) => 'U+' + c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');

// A string with each deceptive character written out as ⟨U+202E⟩.
export const revealed = (/** @type {string} */ text) => String(text).replace(DECEPTIVE, (c) => `⟨${codePoint(c)}⟩`);

// Text as nodes, each deceptive character shown as a marked ⟨U+XXXX⟩ instead of acting.
/** @param {string} text */
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
// that does not parse as an http or https URL stays plain text, made by `plain` (deceptive
// characters shown; a caller may mark more in it, such as mentions).
/**
 * @param {string} text
 * @param {(text: string) => DocumentFragment} [plain]
 */
export function linkify(text, plain = visibleText) {
  const frag = document.createDocumentFragment();
  let last = 0;
  for (const m of text.matchAll(URL_RE)) {
    let raw = m[0];
    const trail = raw.match(TRAILING);
    if (trail) raw = raw.slice(0, -trail[0].length);
    let url = null;
    try { url = new URL(raw); } catch { url = null; }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) continue;
    if (m.index > last) frag.append(plain(text.slice(last, m.index)));
    // The link's text shows what it holds; its address is the parsed, percent-encoded one.
    const a = /** @type {HTMLAnchorElement} */ (el('a', null, revealed(raw)));
    a.href = url.href;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    frag.append(a);
    last = m.index + raw.length;
  }
  if (last < text.length) frag.append(plain(text.slice(last)));
  return frag;
}

// Times and dates in the browser's locale (its language and 12- or 24-hour clock).
const TIME = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const DATE = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short' });
const DATE_YEAR = new Intl.DateTimeFormat(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
const FULL = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'short' });
const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
const upperFirst = (/** @type {string} */ s) => s.charAt(0).toLocaleUpperCase() + s.slice(1);

/** @typedef {number | string | Date} When */

/** The time of day, as the browser's locale writes it. @param {When} ts */
export const timeOfDay = (ts) => TIME.format(new Date(ts));

/** The date and time in full, for a tooltip. @param {When} ts */
export const fullDate = (ts) => FULL.format(new Date(ts));

/** "Today", "Yesterday" (in the browser's language) or a date. @param {When} ts */
export function dayLabel(ts) {
  const d = new Date(ts), today = new Date();
  const days = Math.round((new Date(today.toDateString()).getTime() - new Date(d.toDateString()).getTime()) / 86400000);
  if (days === 0 || days === 1) return upperFirst(RELATIVE.format(-days, 'day'));
  return (d.getFullYear() === today.getFullYear() ? DATE : DATE_YEAR).format(d);
}

/** The time alone today, the day otherwise (the room list). @param {When} ts */
export const shortTime = (ts) => (sameDay(ts, Date.now()) ? timeOfDay(ts) : dayLabel(ts));

/** The day too unless it is today (a message). @param {When} ts */
export const stamp = (ts) => (sameDay(ts, Date.now()) ? timeOfDay(ts) : `${dayLabel(ts)} ${timeOfDay(ts)}`);

/** @param {When} a @param {When} b */
export const sameDay = (a, b) => new Date(a).toDateString() === new Date(b).toDateString();

/** A count in the browser's locale (4,100 or 4.100). @param {number} n */
export const count = (n) => n.toLocaleString();

export const newCid = () => (typeof crypto.randomUUID === 'function'
  ? crypto.randomUUID() : Date.now().toString(36) + Math.random().toString(36).slice(2));

// What a person reads for a protocol or REST error code; the server's own message otherwise.
/** @type {Record<string, string>} */
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
  blocked: 'You blocked this person. Unblock them to write to them.',
  dm_refused: 'This person does not accept direct messages from you.',
  dm_self: 'Choose someone other than yourself.',
  too_many_members: 'A group conversation can have at most 10 people, you included.',
  empty_query: 'Type a word to search for.',
  attachment_not_found: 'A file of this message is no longer there (it expired, or is not yours). Remove it and attach it again.',
  attachment_used: 'A file of this message was sent already, in another message. Attach it again to send it once more.',
  search_unavailable: 'Search is not available on this server: messages are encrypted at rest, so the server cannot read them to search.',
};

/**
 * `text` as a sentence: a capital first letter and a full stop.
 * @param {string} text
 */
export function sentence(text) {
  const t = String(text || '').trim();
  if (!t) return t;
  return upperFirst(t) + (/[.!?…]$/.test(t) ? '' : '.');
}

/**
 * What a person reads for a protocol or REST error: ours for a known code, else the server's
 * message as a full sentence.
 * @param {string | undefined} code
 * @param {string | undefined} message
 */
export function humanError(code, message) {
  if (code === 'invalid' || code === 'conflict' || code === 'weak_password') return sentence(message || HUMAN[code]);
  return sentence((code && HUMAN[code]) || message || 'Something went wrong.');
}
