// @ts-check
// sanction.js — the room staff's one dialog for a sanction that needs more than a click: a
// reason (kept in the audit log, shown with the sanction) and how long (a mute: 15 minutes to
// 30 days; a ban: the same, or until lifted); a held message's reject asks only a reason, which
// its sender is shown. `askSanction` opens it and runs the action with
// the answer; a refusal is shown in the dialog, which stays open; it answers whether it was done.

import { $, field, humanError, showText } from '../../core/dom.js';

/**
 * @typedef {{reason: string, minutes: number | null}} SanctionAnswer
 * @typedef {{title: string, ok: string, kind: 'mute' | 'ban' | 'remove' | 'reject',
 *   run: (a: SanctionAnswer) => Promise<unknown>}} SanctionAsk
 */

/** @type {SanctionAsk | null} */
let asking = null;
/** @type {((done: boolean) => void) | null} */
let settle = null;

const dlg = () => /** @type {HTMLDialogElement} */ ($('sanction-dialog'));

/**
 * Asks for a reason (and, for a mute or ban, a duration), then runs `a.run`.
 * @param {SanctionAsk} a
 * @returns {Promise<boolean>}
 */
export function askSanction(a) {
  settle?.(false);
  asking = a;
  $('sanction-title').textContent = a.title;
  $('sanction-ok').textContent = a.ok;
  field('sanction-reason').value = '';
  $('sanction-reason-label').textContent = a.kind === 'reject'
    ? 'Reason (optional: shown to the sender, kept in the audit log)'
    : 'Reason (kept in the audit log)';
  const timed = a.kind === 'mute' || a.kind === 'ban';
  $('sanction-for').hidden = !timed;
  $('sanction-for-label').hidden = !timed;
  // A ban lasts until lifted unless said otherwise; a mute an hour.
  /** @type {HTMLOptionElement} */ ($('sanction-forever')).disabled = a.kind !== 'ban';
  field('sanction-for').value = a.kind === 'ban' ? '' : '60';
  showText('sanction-error', '');
  dlg().showModal();
  field('sanction-reason').focus();
  return new Promise((resolve) => { settle = resolve; });
}

async function submit() {
  const a = asking;
  if (!a) return;
  const chosen = field('sanction-for').value;
  const timed = a.kind === 'mute' || a.kind === 'ban';
  const answer = { reason: field('sanction-reason').value.trim(), minutes: !timed || !chosen ? null : Number(chosen) };
  const ok = /** @type {HTMLButtonElement} */ ($('sanction-ok'));
  ok.disabled = true;
  try {
    await a.run(answer);
    asking = null;
    dlg().close();
    settle?.(true);
    settle = null;
  } catch (e) {
    showText('sanction-error', humanError(e.code, e.message));
  } finally {
    ok.disabled = false;
  }
}

export function startSanctionDialog() {
  $('sanction-form').addEventListener('submit', (e) => { e.preventDefault(); submit(); });
  $('sanction-cancel').addEventListener('click', () => dlg().close());
  dlg().addEventListener('close', () => { asking = null; settle?.(false); settle = null; });
}
