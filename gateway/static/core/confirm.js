// @ts-check
// confirm.js — asking before something that cannot be undone (deleting a message, leaving or
// deleting a room): one modal <dialog>, built here once, that answers true or false. Never
// `window.confirm`: it blocks the page and cannot be styled or labelled.

import { el } from './dom.js';

/** @type {HTMLDialogElement | null} */
let dialog = null;
/** @type {((yes: boolean) => void) | null} */
let answer = null;

function build() {
  const dlg = /** @type {HTMLDialogElement} */ (el('dialog', 'confirm'));
  dlg.id = 'confirm-dialog';
  dlg.setAttribute('aria-labelledby', 'confirm-title');
  dlg.setAttribute('aria-describedby', 'confirm-text');
  const title = el('h2', null);
  title.id = 'confirm-title';
  const text = el('p', null);
  text.id = 'confirm-text';
  const no = /** @type {HTMLButtonElement} */ (el('button', null, 'Cancel'));
  no.type = 'button';
  no.id = 'confirm-no';
  const yes = /** @type {HTMLButtonElement} */ (el('button', 'danger', 'OK'));
  yes.type = 'button';
  yes.id = 'confirm-yes';
  const row = el('div', 'row end');
  row.append(no, yes);
  dlg.append(title, text, row);
  no.addEventListener('click', () => dlg.close('no'));
  yes.addEventListener('click', () => dlg.close('yes'));
  // Escape and Cancel both close it as "no".
  dlg.addEventListener('close', () => { const a = answer; answer = null; a?.(dlg.returnValue === 'yes'); });
  document.body.append(dlg);
  return dlg;
}

/**
 * Asks `question`; resolves true when the user presses the `action` button. Focus goes to
 * `then` afterwards when given (the element that opened the dialog may be gone by then, as a
 * deleted message's button is), else back where it was.
 * @param {{title: string, text: string, action: string, then?: HTMLElement}} what
 * @returns {Promise<boolean>}
 */
export function confirmAction({ title, text, action, then }) {
  dialog ??= build();
  const dlg = dialog;
  if (dlg.open) dlg.close('no');
  /** @type {HTMLElement} */ (dlg.querySelector('#confirm-title')).textContent = title;
  /** @type {HTMLElement} */ (dlg.querySelector('#confirm-text')).textContent = text;
  /** @type {HTMLElement} */ (dlg.querySelector('#confirm-yes')).textContent = action;
  dlg.returnValue = '';
  const back = then ?? /** @type {HTMLElement | null} */ (document.activeElement);
  return new Promise((resolve) => {
    answer = (yes) => {
      // A click on the dialog's buttons can leave Chromium's caret in page text, where it
      // swallows what is typed next even into a focused field: start from no selection.
      document.getSelection()?.removeAllRanges();
      if (back?.isConnected) back.focus();
      resolve(yes);
    };
    dlg.showModal();
    /** @type {HTMLElement} */ (dlg.querySelector('#confirm-no')).focus();
  });
}
