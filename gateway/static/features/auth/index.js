// @ts-check
// auth — the sign-in screen (password or emailed code), shown whenever nobody is signed in, and
// the boot: a browser that logged in before goes straight to the app (cookie, GET /api/me).

import { $, field, showText, humanError } from '../../core/dom.js';
import { api, setSessionHint, hasSessionHint } from '../../core/api.js';
import { store } from '../../core/store.js';
import { signIn, signedOutReason } from '../../core/session.js';

/** @param {string} message */
function showAuth(message) {
  $('app').hidden = true;
  $('auth').hidden = false;
  showText('auth-error', message);
  $('username').focus();
}

/** @param {boolean} email */
function pickTab(email) {
  $('tab-password').setAttribute('aria-selected', String(!email));
  $('tab-email').setAttribute('aria-selected', String(email));
  $('password-form').hidden = email;
  $('email-form').hidden = !email;
  (email ? $('email') : $('username')).focus();
}

/** @param {HTMLElement[]} buttons @param {boolean} on */
const busy = (buttons, on) => { for (const b of buttons) /** @type {HTMLButtonElement} */ (b).disabled = on; };

/** @param {'login' | 'register'} kind */
async function passwordAuth(kind) {
  const username = field('username').value.trim(), password = field('password').value;
  showText('auth-error', '');
  if (!username || !password) return showText('auth-error', 'Enter a username and a password.');
  if (kind === 'register') { // the server's rules, checked here first
    if (!/^[A-Za-z0-9_]{3,32}$/.test(username)) return showText('auth-error', 'A username has 3 to 32 letters, digits or _.');
    if ([...password].length < 8) return showText('auth-error', 'A password has at least 8 characters.');
  }
  const buttons = [$('login'), $('register')];
  busy(buttons, true);
  try {
    const data = await api('POST', `/api/auth/${kind}`, { username, password });
    field('password').value = '';
    signIn(data.user);
  } catch (e) {
    showText('auth-error', e.status === 401 ? 'Wrong username or password.' : humanError(e.code, e.message));
  } finally {
    busy(buttons, false);
  }
}

let codeSent = false;
async function emailAuth() {
  const email = field('email').value.trim(), code = field('code').value.trim();
  showText('email-error', '');
  if (!email.includes('@')) return showText('email-error', 'Enter your email address.');
  busy([$('email-submit')], true);
  try {
    if (!codeSent || !code) {
      await api('POST', '/api/auth/email/request', { email });
      codeSent = true;
      $('code-label').hidden = false;
      showText('email-note', `We sent a 6-digit code to ${email}. It is valid for 10 minutes.`);
      $('email-submit').textContent = 'Sign in';
      $('code').focus();
    } else {
      const data = await api('POST', '/api/auth/email/verify', { email, code });
      signIn(data.user);
    }
  } catch (e) {
    showText('email-error', e.status === 401 ? 'That code is not right. Check the email and try again.' : humanError(e.code, e.message));
  } finally {
    busy([$('email-submit')], false);
  }
}

function boot() {
  if (!hasSessionHint()) return showAuth('');
  api('GET', '/api/me').then((data) => signIn(data.user)).catch((e) => {
    if (e.status === 401) setSessionHint(false);
    showAuth(e.status === 401 ? '' : humanError(e.code, e.message));
  });
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'auth',
  views: new URL('./view.html', import.meta.url),
  start() {
    $('tab-password').addEventListener('click', () => pickTab(false));
    $('tab-email').addEventListener('click', () => pickTab(true));
    $('password-form').addEventListener('submit', (e) => { e.preventDefault(); passwordAuth('login'); });
    $('register').addEventListener('click', () => passwordAuth('register'));
    $('email-form').addEventListener('submit', (e) => { e.preventDefault(); emailAuth(); });
    let signedIn = false;
    store.subscribe('me', ({ me }) => {
      if (!!me === signedIn) return;
      signedIn = !!me;
      if (me) { $('auth').hidden = true; $('app').hidden = false; } else showAuth(signedOutReason);
    });
    boot();
  },
};
