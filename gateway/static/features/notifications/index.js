// @ts-check
// notifications — desktop notifications: messages from others (not blocked ones) in the open room
// while the tab is hidden, and mentions of the user (from the inbox) in any room not open, hidden
// or not; and
// their switch in the room's header (on, off, or blocked by the browser). The choice is kept in
// this browser.

import { $, showText } from '../../core/dom.js';
import { onFrame } from '../../core/frames.js';
import { isBlocked } from '../../core/people.js';
import { store, isMe, selectRoom, roomTitle } from '../../core/store.js';

const PREF = 'confab.notify';
/** A mention older than this (replayed after a long disconnection) is counted, not announced. */
const MENTION_FRESH_MS = 10 * 60 * 1000;
const supported = () => 'Notification' in window;

/** The user wants them here (and has not turned them off since). */
function wanted() {
  try { return localStorage.getItem(PREF) !== 'off'; } catch { return true; }
}

const on = () => supported() && Notification.permission === 'granted' && wanted();

function renderSwitch() {
  const btn = $('notify');
  btn.hidden = !supported();
  if (!supported()) return;
  const state = Notification.permission === 'denied' ? 'blocked' : on() ? 'on' : 'off';
  btn.setAttribute('aria-checked', String(state === 'on'));
  btn.dataset.state = state;
  btn.title = `Desktop notifications: ${state}`;
}

async function toggle() {
  if (!supported()) return;
  showText('notify-note', '');
  if (Notification.permission === 'denied') {
    showText('notify-note', 'Notifications are blocked for this site. Allow them in the browser\'s site settings, then turn them on here.');
    return;
  }
  const turnOn = !on();
  try { localStorage.setItem(PREF, turnOn ? 'on' : 'off'); } catch { /* no storage */ }
  if (turnOn && Notification.permission === 'default') await Notification.requestPermission();
  renderSwitch();
  showText('notify-note', on() ? 'Desktop notifications are on while Confab is in the background.' : '');
}

/** @param {import('../../core/types.js').Frame} m */
function notify(m) {
  const r = store.state.rooms.get(m.room);
  // While the page is in view, the room list's badge says it.
  if (!r || isMe(m.from) || (m.from && isBlocked(m.from.id)) || !on() || !document.hidden) return;
  const n = new Notification(r.kind === 'dm' ? `${m.from?.username ?? 'Someone'} (direct message)` : `${m.from?.username ?? 'Someone'} in ${r.name}`, { body: (m.body || (m.attachments?.length ? 'Sent a file' : '')).slice(0, 200), tag: `room-${r.id}` });
  n.addEventListener('click', () => { window.focus(); selectRoom(r.id); n.close(); });
}

/** An inbox event: a mention of the user in a room that is not open. @param {import('../../core/types.js').Frame} f */
function notifyMention(f) {
  const { inbox, current, rooms } = store.state, e = f.event || {};
  if (f.room !== inbox || e.op !== 'mention' || e.room === current || !on() || (e.from && isBlocked(e.from.id))) return;
  if (f.ts && Date.now() - new Date(f.ts).getTime() > MENTION_FRESH_MS) return;
  const r = rooms.get(e.room);
  const n = new Notification(`${e.from?.username ?? 'Someone'} mentioned you in ${r ? roomTitle(r) : 'a room'}`, { body: String(e.excerpt ?? '').slice(0, 200), tag: `mention-${e.room}-${e.target}` });
  n.addEventListener('click', () => { window.focus(); selectRoom(e.room); n.close(); });
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'notifications',
  views: new URL('./view.html', import.meta.url),
  start() {
    onFrame('message', notify);
    onFrame('system', notifyMention);
    $('notify').addEventListener('click', toggle);
    store.subscribe('me', renderSwitch);
  },
};
