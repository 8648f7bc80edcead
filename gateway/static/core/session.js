// @ts-check
// session.js — signing in and out: who `me` is (the store's `me` topic, which the auth screen and
// the app shell follow), the one socket, and the limits the server announces. A feature that
// needs to end the session on a 401 calls `sessionLost`.

import { api, setSessionHint } from './api.js';
import { Socket } from './socket.js';
import { store } from './store.js';

export const socket = new Socket({ onAuthLost: () => sessionLost() });

/** Why the auth screen is shown ('' after a plain logout). */
export let signedOutReason = '';

/**
 * Starts the signed-in app for `user`.
 * @param {import('./types.js').User} user
 */
export function signIn(user) {
  setSessionHint(true);
  store.update('me', (s) => { s.me = user; });
  socket.start();
  api('GET', '/api/config').then((c) => {
    if (c && c.max_body_chars > 0) store.update('limits', (s) => { s.limits = { max_body_chars: c.max_body_chars }; });
  }).catch(() => { /* keep the default */ });
}

/** Logs out on the server, then ends the app. */
export async function logout() {
  socket.stop(); // the server closes our socket: that must not look like a dropped connection
  try { await api('POST', '/api/auth/logout'); } catch { /* leave anyway */ }
  end('');
}

/** The login is over (a 401 that a refresh could not cure): back to the sign-in screen. */
export function sessionLost() {
  if (!store.state.me) return;
  socket.stop();
  end('Your session has ended. Please log in again.');
}

/** @param {string} reason */
function end(reason) {
  signedOutReason = reason;
  setSessionHint(false);
  store.update(['me', 'rooms', 'current', 'inbox'], (s) => {
    s.me = null;
    s.current = null;
    s.inbox = null;
    s.rooms.clear();
  });
}

/**
 * A REST failure: a 401 ends the session; otherwise the caller shows `e`'s text.
 * @param {any} e
 * @returns {boolean} true when it was handled (the session ended)
 */
export function endedBy(e) {
  if (e?.status !== 401) return false;
  sessionLost();
  return true;
}
