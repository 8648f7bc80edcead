// @ts-check
// toast.js — a short note at the bottom of the screen about something that happened elsewhere
// (the open room was deleted, you were removed from a room). It goes away by itself; a screen
// reader reads it (a polite live region).

import { el } from './dom.js';

const SHOWN_MS = 6000;
/** @type {HTMLElement | null} */
let box = null;
let timer = 0;

/** Shows `text` for a few seconds. @param {string} text */
export function toast(text) {
  if (!box) {
    box = el('div', 'toast');
    box.id = 'toast';
    box.setAttribute('role', 'status');
    box.setAttribute('aria-live', 'polite');
    document.body.append(box);
  }
  box.textContent = text;
  box.hidden = false;
  clearTimeout(timer);
  timer = setTimeout(() => { if (box) box.hidden = true; }, SHOWN_MS);
}
