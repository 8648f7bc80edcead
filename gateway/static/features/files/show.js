// @ts-check
// show.js — a message's files in the message list: an image as its thumbnail, sized from the
// attachment's width and height before it loads (the history does not jump) and loaded lazily,
// opening the full-size view (a modal dialog: Escape or ✕ closes it); a voice note or audio file
// as a player (player.js); any other file as a card with its name, size and a download link.
//
// Media URLs are signed and expire: a URL past its `exp` is renewed before use, and an image or
// audio that fails to load is renewed once (GET /api/rooms/{room}/attachments/{id}) and tried
// again. The renewed URLs replace the old ones on the attachment object, which is the message's
// own: a message drawn again uses them.

import { $, el } from '../../core/dom.js';
import { api } from '../../core/api.js';
import { store } from '../../core/store.js';
import { audioPlayer } from './player.js';
import { expired, fileSize, typeWord } from './format.js';
import { icon } from './icons.js';

/** @typedef {import('../../core/types.js').Attachment} Attachment */
/** @typedef {import('../../core/types.js').Message} Message */

/** The largest box a preview takes in the list (CSS pixels); phones shrink it to the bubble. */
const PREVIEW = { w: 320, h: 280 };

/** Renewals under way, by room and attachment: one request however many elements ask. @type {Map<string, Promise<Attachment>>} */
const renewing = new Map();

/**
 * Fresh signed URLs for attachment `a` of `room`, written onto `a`.
 * @param {number} room
 * @param {Attachment} a
 * @returns {Promise<Attachment>}
 */
function renew(room, a) {
  const key = `${room}:${a.id}`;
  let p = renewing.get(key);
  if (!p) {
    p = api('GET', `/api/rooms/${room}/attachments/${encodeURIComponent(a.id)}`)
      .then((fresh) => Object.assign(a, { url: fresh.url, thumb_url: fresh.thumb_url }))
      .finally(() => renewing.delete(key));
    renewing.set(key, p);
  }
  return p;
}

/**
 * A URL of `a` valid now: its own, or a renewed one when it has expired (or has none yet: a
 * message of one's own shown from its ack).
 * @param {number} room
 * @param {Attachment} a
 * @param {'url' | 'thumb_url'} which
 */
async function validUrl(room, a, which) {
  if (!expired(a[which] ?? a.url)) return /** @type {string} */ (a[which] ?? a.url);
  const fresh = await renew(room, a);
  return /** @type {string} */ (fresh[which] ?? fresh.url);
}

/**
 * Loads `img` from `which` URL of `a`, renewing it once if it has expired or fails to load.
 * @param {HTMLImageElement} img
 * @param {number} room
 * @param {Attachment} a
 * @param {'url' | 'thumb_url'} which
 */
function loadImage(img, room, a, which) {
  let renewed = false;
  img.addEventListener('error', () => {
    if (renewed || !img.getAttribute('src')) return;
    renewed = true;
    renew(room, a).then((fresh) => { img.src = /** @type {string} */ (fresh[which] ?? fresh.url); }, () => img.classList.add('broken'));
  });
  const now = a[which] ?? a.url;
  if (now && !expired(now)) img.src = now;
  else validUrl(room, a, which).then((u) => { img.src = u; }, () => img.classList.add('broken'));
}

/**
 * The size a preview of `a` shows at: its own, scaled down to fit the preview box.
 * @param {Attachment} a
 */
function previewSize(a) {
  if (!a.width || !a.height) return null;
  const scale = Math.min(1, PREVIEW.w / a.width, PREVIEW.h / a.height);
  return { w: Math.max(1, Math.round(a.width * scale)), h: Math.max(1, Math.round(a.height * scale)) };
}

/** @param {number} room @param {Attachment} a */
function imageView(room, a) {
  const btn = /** @type {HTMLButtonElement} */ (el('button', 'att-image'));
  btn.type = 'button';
  btn.setAttribute('aria-label', `${a.name}: show it full size`);
  btn.title = a.name;
  const img = /** @type {HTMLImageElement} */ (el('img'));
  img.alt = a.name;
  img.loading = 'lazy';
  img.decoding = 'async';
  const size = previewSize(a);
  if (size) {
    img.width = size.w;
    img.height = size.h;
  }
  loadImage(img, room, a, a.thumb_url ? 'thumb_url' : 'url');
  btn.append(img);
  btn.addEventListener('click', () => openViewer(room, a, btn));
  return btn;
}

/** @param {number} room @param {Attachment} a */
function fileCard(room, a) {
  const card = el('div', 'att-file');
  const sign = el('span', 'att-file-icon');
  sign.append(icon(a.mime.startsWith('text/') || a.mime === 'application/pdf' ? 'text' : 'file', 26));
  const info = el('div', 'att-file-info');
  const name = /** @type {HTMLAnchorElement} */ (el('a', 'att-file-name', a.name));
  name.target = '_blank';
  name.rel = 'noopener noreferrer';
  name.title = a.name;
  info.append(name, el('span', 'att-file-size', `${fileSize(a.size)} · ${typeWord(a.mime, a.name)}`));
  const down = /** @type {HTMLAnchorElement} */ (el('a', 'att-download'));
  down.append(icon('download'));
  down.download = a.name;
  down.setAttribute('aria-label', `Download ${a.name} (${fileSize(a.size)})`);
  down.title = 'Download';
  for (const link of [name, down]) {
    link.href = a.url ?? '#';
    // An expired link is renewed, then followed.
    link.addEventListener('click', (e) => {
      if (!expired(a.url)) return;
      e.preventDefault();
      validUrl(room, a, 'url').then((u) => { name.href = down.href = u; link.click(); }, () => {});
    });
  }
  card.append(sign, info, down);
  return card;
}

/**
 * A message's files, as the message list shows them.
 * @param {Partial<Message>} m
 */
export function attachmentsView(m) {
  const room = m.room ?? store.state.current ?? 0;
  const box = el('div', 'attachments');
  for (const a of m.attachments ?? []) {
    let item;
    if (a.kind === 'image') item = imageView(room, a);
    else if (a.kind === 'voice' || a.kind === 'audio') {
      const player = audioPlayer(a, { src: () => validUrl(room, a, 'url'), renew: () => renew(room, a).then((f) => /** @type {string} */ (f.url)) });
      item = a.kind === 'audio' ? withCaption(player, fileCard(room, a)) : player;
    } else item = fileCard(room, a);
    item.dataset.attachment = a.id;
    item.classList.add('attachment');
    box.append(item);
  }
  return box;
}

/** An audio file: its card (name, size, download) above its player. @param {HTMLElement} player @param {HTMLElement} card */
function withCaption(player, card) {
  const box = el('div', 'att-audio');
  box.append(card, player);
  return box;
}

// ---- the full-size view ---------------------------------------------------------------
/** Where focus goes back to when the view closes. @type {HTMLElement | null} */
let opener = null;

/**
 * Opens `a` full size in the media dialog.
 * @param {number} room
 * @param {Attachment} a
 * @param {HTMLElement} from
 */
function openViewer(room, a, from) {
  const dlg = /** @type {HTMLDialogElement} */ ($('media-dialog'));
  const img = /** @type {HTMLImageElement} */ ($('media-img'));
  opener = from;
  $('media-name').textContent = a.name;
  $('media-info').textContent = [a.width && a.height ? `${a.width} × ${a.height}` : '', fileSize(a.size)].filter(Boolean).join(' · ');
  const fresh = img.cloneNode(false);
  /** @type {HTMLImageElement} */ (fresh).removeAttribute('src');
  img.replaceWith(fresh); // drops the listeners of the image shown before
  const shown = /** @type {HTMLImageElement} */ (fresh);
  shown.alt = a.name;
  if (a.width && a.height) { shown.width = a.width; shown.height = a.height; }
  else { shown.removeAttribute('width'); shown.removeAttribute('height'); }
  loadImage(shown, room, a, 'url');
  const down = /** @type {HTMLAnchorElement} */ ($('media-download'));
  down.download = a.name;
  down.href = a.url ?? '#';
  validUrl(room, a, 'url').then((u) => { down.href = u; }, () => {});
  if (!dlg.open) dlg.showModal();
  $('media-close').focus();
}

/** Wires the full-size view: ✕, Escape (the dialog's own) and a click beside the image close it. */
export function wireViewer() {
  const dlg = /** @type {HTMLDialogElement} */ ($('media-dialog'));
  $('media-close').addEventListener('click', () => dlg.close());
  dlg.addEventListener('click', (e) => { if (e.target === dlg) dlg.close(); });
  dlg.addEventListener('close', () => {
    $('media-img').removeAttribute('src');
    opener?.focus();
    opener = null;
  });
}
