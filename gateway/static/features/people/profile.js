// @ts-check
// profile.js — a person's profile card (one <dialog>): display name, username, status, online or
// when last seen (in the browser's locale), and "Message" (opens or makes the direct message
// with them) and "Block"/"Unblock" (after a confirmation; the blocked user is not told). What is
// known shows at once; GET /api/users/{username} then fills in the rest. One's own card is the
// settings form instead (settings.js).

import { $, showText, humanError, fullDate } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { confirmAction } from '../../core/confirm.js';
import { endedBy } from '../../core/session.js';
import { rememberPeople, isBlocked, setBlocked, openDirect, findDirect, directRefusal } from '../../core/people.js';
import { store, isMe, selectRoom } from '../../core/store.js';
import { toast } from '../../core/toast.js';
import { fillSettings } from './settings.js';

/** @typedef {import('../../core/types.js').User} User */
/** @typedef {import('../../core/types.js').Profile} Profile */

/** Whose card is open. @type {User | null} */
let shown = null;
let token = 0;

const dialog = () => /** @type {HTMLDialogElement} */ ($('profile-dialog'));

/**
 * Opens `user`'s card; focus goes back to `from` when it closes.
 * @param {User} user
 * @param {HTMLElement} [from]
 */
export async function showProfile(user, from) {
  shown = user;
  const my = ++token;
  back = from ?? null;
  const own = isMe(user);
  showText('profile-error', '');
  $('profile-actions').hidden = own;
  $('me-form').hidden = !own;
  render();
  if (!dialog().open) dialog().showModal();
  (own ? $('me-display') : $('profile-message')).focus();
  if (own) return fillSettings();
  try {
    const p = await api('GET', `/api/users/${encodeURIComponent(user.username)}`);
    if (my !== token) return;
    rememberPeople([p]);
    // The server knows best whether the viewer blocked them.
    if (typeof p.blocked === 'boolean' && p.blocked !== isBlocked(p.id)) {
      store.update('blocks', ({ blocks }) => { if (p.blocked) blocks.set(p.id, p.username); else blocks.delete(p.id); });
    }
  } catch (e) {
    if (my === token && !endedBy(e)) {
      showText('profile-error', e.code === 'not_found' ? `There is no user ${user.username} any more.` : humanError(e.code, e.message));
    }
  }
}

/** @type {HTMLElement | null} */
let back = null;

/** The open card, from the store (the profile as known, whether they are blocked). */
export function render() {
  if (!shown) return;
  const user = shown, own = isMe(user);
  /** @type {Profile} */
  const p = { ...user, ...store.state.people.get(user.id), ...(own ? store.state.me : {}) };
  $('profile-name').textContent = p.display_name || p.username;
  $('profile-username').textContent = `@${p.username}${own ? ' (you)' : ''}`;
  showText('profile-status', p.status || '');
  const seen = own ? 'This is you.' : p.online ? 'Online' : p.last_seen ? `Last seen ${fullDate(p.last_seen)}` : p.online === false ? 'Offline' : '';
  $('profile-seen').textContent = seen;
  $('profile-dot').classList.toggle('on', !!p.online || own);
  const blocked = !own && isBlocked(user.id);
  $('profile-blocked-note').hidden = !blocked;
  const block = $('profile-block');
  block.textContent = blocked ? 'Unblock' : 'Block';
  block.className = blocked ? '' : 'danger';
  block.setAttribute('aria-label', `${blocked ? 'Unblock' : 'Block'} ${p.username}`);
  $('profile-message').setAttribute('aria-label', `Send ${p.username} a direct message`);
}

/** "Message": the direct message with them, found or made. */
async function message() {
  const user = shown;
  if (!user) return;
  const btn = /** @type {HTMLButtonElement} */ ($('profile-message'));
  const known = findDirect([user.id]);
  if (known) { dialog().close(); selectRoom(known.id); return; }
  btn.disabled = true;
  showText('profile-error', '');
  try {
    await openDirect([user.username]);
    dialog().close();
  } catch (e) {
    if (!endedBy(e)) showText('profile-error', directRefusal(e, [user.username]));
  } finally {
    btn.disabled = false;
  }
}

/** "Block" or "Unblock", the first after a confirmation. */
async function toggleBlock() {
  const user = shown;
  if (!user) return;
  const btn = /** @type {HTMLButtonElement} */ ($('profile-block'));
  const on = !isBlocked(user.id);
  if (on) {
    const yes = await confirmAction({
      title: `Block ${user.username}?`,
      text: `${user.username} will not be able to send you direct messages, and you will not be able to write to them. Their messages in rooms you share are collapsed. They are not told.`,
      action: 'Block',
      then: btn,
    });
    if (!yes || shown !== user) return;
  }
  btn.disabled = true;
  showText('profile-error', '');
  try {
    await setBlocked(user, on);
    toast(on ? `You blocked ${user.username}.` : `You unblocked ${user.username}.`);
  } catch (e) {
    if (!endedBy(e)) showText('profile-error', humanError(e.code, e.message));
  } finally {
    btn.disabled = false;
  }
}

export function wireProfile() {
  $('profile-close').addEventListener('click', () => dialog().close());
  $('profile-message').addEventListener('click', message);
  $('profile-block').addEventListener('click', toggleBlock);
  // A click on the backdrop (outside the card) closes it.
  dialog().addEventListener('click', (e) => {
    const r = dialog().getBoundingClientRect();
    if (e.target === dialog() && (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom)) dialog().close();
  });
  dialog().addEventListener('close', () => {
    shown = null;
    token++;
    if (back?.isConnected) back.focus();
    back = null;
  });
  store.subscribe(['people', 'blocks', 'me'], render);
}
