// @ts-check
// dialog.js — the panel's one dialog for an action that needs more than a click: a reason, an
// optional end, minutes, a role. It answers the values, or null when cancelled; `run` does the
// action and may throw, the error then shown in the dialog, which stays open.

import { $, field, humanError } from '../core/dom.js';

/**
 * @typedef {{reason: string, expires_at: number | null, minutes: number, role: string}} Answer
 * @typedef {{title: string, ok: string, reason?: 'required' | 'optional', expiry?: boolean,
 *   minutes?: boolean, role?: string, run: (a: Answer) => Promise<string | void>}} Ask
 */

const dlg = /** @type {HTMLDialogElement} */ ($('act-dialog'));
/** @type {Ask | null} */
let asking = null;

$('act-cancel').addEventListener('click', () => dlg.close());
$('act-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const a = asking;
  if (!a) return;
  const reason = field('act-reason').value.trim();
  if (a.reason === 'required' && !reason) return shown('act-error', 'Give a reason.');
  const when = field('act-expiry').value;
  const expires = a.expiry && when ? new Date(when).getTime() : null;
  if (expires != null && !(expires > Date.now())) return shown('act-error', 'The end must be in the future.');
  const answer = { reason, expires_at: expires, minutes: Number(field('act-minutes').value) || 0, role: field('act-role').value };
  const ok = /** @type {HTMLButtonElement} */ ($('act-ok'));
  ok.disabled = true;
  try {
    const note = await a.run(answer);
    if (note) { // something to read before closing (a generated password)
      shown('act-result', note);
      shown('act-error', '');
      ok.hidden = true;
      $('act-cancel').textContent = 'Close';
    } else dlg.close();
  } catch (err) {
    shown('act-error', humanError(err.code, err.message));
  } finally {
    ok.disabled = false;
  }
});

/** @param {string} id @param {string} text */
function shown(id, text) {
  const p = $(id);
  p.textContent = text;
  p.hidden = !text;
}

/** Opens the dialog for `a`. @param {Ask} a */
export function ask(a) {
  asking = a;
  $('act-title').textContent = a.title;
  $('act-ok').textContent = a.ok;
  $('act-ok').hidden = false;
  $('act-cancel').textContent = 'Cancel';
  /** @type {[string, boolean][]} */
  const parts = [['reason', !!a.reason], ['expiry', !!a.expiry], ['minutes', !!a.minutes], ['role', !!a.role]];
  for (const [name, on] of parts) {
    $(`act-${name}`).hidden = !on;
    $(`act-${name}-label`).hidden = !on;
  }
  field('act-reason').value = '';
  field('act-expiry').value = '';
  if (a.role) field('act-role').value = a.role;
  shown('act-error', '');
  shown('act-result', '');
  dlg.showModal();
  (a.reason ? field('act-reason') : $('act-ok')).focus();
}
