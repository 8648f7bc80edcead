// @ts-check
// tray.js — the files waiting to go with the next message, above the composer: each uploads at
// once, with a progress bar and a Cancel button; an uploaded one waits, with Remove; a refused
// one says which limit it hit. A send takes the uploaded ones (the composer's `AttachmentSource`);
// a send asked for while some still upload goes out when the last one is done.

import { $, el, showText } from '../../core/dom.js';
import { endedBy } from '../../core/session.js';
import { clock, fileSize } from './format.js';
import { icon } from './icons.js';
import { upload, refusalText, limitKind } from './upload.js';

/** @typedef {import('../../core/types.js').Attachment} Attachment */

/** A message carries at most this many files (the server's limit too). */
export const MAX_FILES = 10;

/**
 * One file of the tray. `local` is an object URL of its bytes, to show, play or download a file
 * of one's own before the server has signed a URL for it (a pending send).
 * @typedef {{name: string, size: number, kind: 'image' | 'voice' | 'file', state: 'uploading' | 'ready' | 'failed',
 *   abort: () => void, attachment?: Attachment, local?: string, li: HTMLElement}} Item
 */

/** @type {Item[]} */
let items = [];
/** A send was asked for while files were uploading: it goes when they are done. */
let sendWanted = false;
/** Sends the composer's message (compose's `sendMessage`, given by `wireTray`). */
let send = () => {};

const list = () => $('uploads');

/** Shows the tray, or hides it when empty, and says what a send waits for. */
function renderTray() {
  list().hidden = items.length === 0;
  const uploading = items.filter((i) => i.state === 'uploading').length;
  if (!uploading) sendWanted = false;
  showText('uploads-note', sendWanted ? `Your message goes as soon as ${uploading === 1 ? 'the upload is' : 'the uploads are'} done.` : '');
}

/**
 * Adds files to the tray and uploads each; `voiceMs` marks a voice note of that length.
 * @param {File[] | Blob[]} files
 * @param {{voiceMs?: number, name?: string}} [opts]
 */
export function addFiles(files, { voiceMs, name } = {}) {
  const room = Math.max(0, MAX_FILES - items.length);
  if (files.length > room) {
    showText('compose-error', `A message can carry at most ${MAX_FILES} files: ${room ? `only the first ${room} were added` : 'send these first'}.`);
  }
  for (const file of [...files].slice(0, room)) start(file, name ?? (/** @type {File} */ (file).name || 'file'), voiceMs);
}

/**
 * @param {Blob} file
 * @param {string} name
 * @param {number | undefined} voiceMs
 */
function start(file, name, voiceMs) {
  const kind = limitKind(file, voiceMs != null);
  const li = el('li', 'upload');
  /** @type {Item} */
  const item = { name, size: file.size, kind, state: 'uploading', abort: () => {}, li };
  item.local = URL.createObjectURL(file); // no copy: it names the file's bytes where they are

  const thumb = kind === 'image' ? /** @type {HTMLImageElement} */ (el('img', 'upload-thumb')) : iconBox(kind === 'voice' ? 'mic' : 'file');
  if (thumb instanceof HTMLImageElement) {
    thumb.alt = '';
    thumb.setAttribute('aria-hidden', 'true');
    thumb.addEventListener('error', () => thumb.replaceWith(iconBox('file')), { once: true }); // not an image after all
    thumb.src = item.local ?? '';
  }
  const label = voiceMs != null ? `Voice note, ${clock(voiceMs)}` : name;
  const info = el('div', 'upload-info');
  const title = el('span', 'upload-name', label);
  title.title = label;
  const status = el('span', 'upload-status', `Uploading… 0 of ${fileSize(file.size)}`);
  const bar = /** @type {HTMLProgressElement} */ (el('progress', 'upload-bar'));
  bar.max = file.size || 1;
  bar.value = 0;
  bar.setAttribute('aria-label', `Uploading ${label}`);
  info.append(title, status, bar);
  const btn = /** @type {HTMLButtonElement} */ (el('button', 'upload-x', '✕'));
  btn.type = 'button';
  btn.setAttribute('aria-label', `Cancel the upload of ${label}`);
  btn.title = 'Cancel';
  btn.addEventListener('click', () => drop(item));
  li.append(thumb, info, btn);
  list().append(li);
  items.push(item);
  renderTray();

  const sending = upload(file, name, {
    voiceMs,
    onProgress: (sent, total) => {
      bar.max = total || 1;
      bar.value = sent;
      status.textContent = `Uploading… ${fileSize(sent)} of ${fileSize(total)}`;
    },
  });
  item.abort = sending.abort;
  sending.done.then((up) => {
    if (!items.includes(item)) return;
    item.state = 'ready';
    item.attachment = { ...up, url: item.local, thumb_url: up.kind === 'image' ? item.local : undefined };
    li.classList.add('ready');
    bar.remove();
    status.textContent = voiceMs != null ? 'Voice note' : fileSize(up.size);
    btn.setAttribute('aria-label', `Remove ${label}`);
    btn.title = 'Remove';
    finished();
  }, (e) => {
    if (!items.includes(item) || e.code === 'aborted') return;
    if (endedBy(e)) return;
    item.state = 'failed';
    li.classList.add('failed');
    bar.remove();
    status.textContent = refusalText(e, name, file.size, kind);
    status.setAttribute('role', 'alert');
    btn.setAttribute('aria-label', `Dismiss ${label}`);
    btn.title = 'Dismiss';
    sendWanted = false; // the user decides what to send now
    renderTray();
  });
}

/** An upload is done: a send waiting for it goes once none uploads any more. */
function finished() {
  const waiting = sendWanted && !items.some((i) => i.state === 'uploading');
  renderTray();
  if (waiting) send();
}

/** Removes `item` from the tray, cancelling its upload. @param {Item} item */
function drop(item) {
  items = items.filter((i) => i !== item);
  if (item.state === 'uploading') item.abort();
  if (item.local) URL.revokeObjectURL(item.local);
  item.li.remove();
  renderTray(); // a send held for it is forgotten once nothing uploads
}

/** Empties the tray (signed out, or the room changed under a held send). */
export function clearTray() {
  sendWanted = false;
  for (const i of [...items]) drop(i);
}

/** A send waits for the uploads: held, it goes when they are done. */
export function holdSend() {
  sendWanted = true;
  renderTray();
}

/** Forgets a send held for the uploads (the room changed). */
export function dropHeldSend() {
  sendWanted = false;
  renderTray();
}

/**
 * The tray as the composer's source of attachments.
 * @param {() => void} sendMessage  the composer's send, called when a held send may go
 * @returns {import('../chat/compose.js').AttachmentSource}
 */
export function wireTray(sendMessage) {
  send = sendMessage;
  return {
    ready: () => items.filter((i) => i.state === 'ready').map((i) => /** @type {Attachment} */ (i.attachment)),
    holds: () => {
      if (!items.some((i) => i.state === 'uploading')) return false;
      holdSend();
      return true;
    },
    sent: () => {
      // The message shows them now (with their local URLs): they leave the tray, not the page.
      for (const i of items.filter((x) => x.state === 'ready')) i.li.remove();
      items = items.filter((i) => i.state !== 'ready');
      sendWanted = false;
      renderTray();
    },
    restore: (files) => {
      for (const a of files) {
        if (items.some((i) => i.attachment?.id === a.id) || items.length >= MAX_FILES) continue;
        restoreItem(a);
      }
      renderTray();
    },
  };
}

/** A file of a refused send, back in the tray, uploaded already. @param {Attachment} a */
function restoreItem(a) {
  const li = el('li', 'upload ready');
  const label = a.kind === 'voice' ? `Voice note, ${clock(a.duration_ms ?? 0)}` : a.name;
  const sign = iconBox(a.kind === 'image' ? 'image' : a.kind === 'voice' ? 'mic' : 'file');
  const info = el('div', 'upload-info');
  info.append(el('span', 'upload-name', label), el('span', 'upload-status', fileSize(a.size)));
  const btn = /** @type {HTMLButtonElement} */ (el('button', 'upload-x', '✕'));
  btn.type = 'button';
  btn.setAttribute('aria-label', `Remove ${label}`);
  btn.title = 'Remove';
  /** @type {Item} */
  const item = { name: a.name, size: a.size, kind: a.kind === 'voice' ? 'voice' : a.kind === 'image' ? 'image' : 'file', state: 'ready', abort: () => {}, attachment: a, li };
  btn.addEventListener('click', () => drop(item));
  li.append(sign, info, btn);
  list().append(li);
  items.push(item);
}

/** A file's icon in the tray, in the place of an image's thumbnail. @param {import('./icons.js').IconName} name */
function iconBox(name) {
  const box = el('span', 'upload-icon');
  box.append(icon(name, 22));
  return box;
}
