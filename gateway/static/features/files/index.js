// @ts-check
// files — attachments: the attach button (a file picker), files dropped on the conversation and
// images pasted into the composer go to the tray above the composer (tray.js), which uploads
// them with progress and cancel and hands them to the next send; the microphone button records
// a voice note (record.js) sent once uploaded; and in the message list, images as previews with
// a full-size view, audio as players, other files as cards (show.js).

import { $, showText } from '../../core/dom.js';
import { store } from '../../core/store.js';
import { provideAttachments, sendMessage } from '../chat/compose.js';
import { provideAttachmentsView } from '../chat/messages.js';
import { addFiles, clearTray, dropHeldSend, holdSend, wireTray } from './tray.js';
import { recording, stop, wireRecorder } from './record.js';
import { attachmentsView, wireViewer } from './show.js';

/** A voice note's file name: when it was recorded, and its container's extension. @param {Blob} blob */
function voiceName(blob) {
  const d = new Date(), p = (/** @type {number} */ n) => String(n).padStart(2, '0');
  const ext = blob.type.includes('ogg') ? 'ogg' : blob.type.includes('mp4') ? 'm4a' : 'webm';
  return `voice-${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}.${ext}`;
}

/** A pasted image's name (the clipboard calls every one "image.png"). @param {File} f */
function pastedName(f) {
  const ext = f.type.split('/')[1]?.replace('jpeg', 'jpg') || 'png';
  return `pasted-image-${new Date().toISOString().slice(0, 19).replace(/[T:]/g, '-')}.${ext}`;
}

/** Files dragged over the conversation are shown the drop zone; dropped, they are attached. */
function wireDrop() {
  const chat = /** @type {HTMLElement} */ ($('compose').closest('.chat'));
  const zone = $('drop-zone');
  let depth = 0;
  const carriesFiles = (/** @type {DragEvent} */ e) => !!e.dataTransfer && [...e.dataTransfer.types].includes('Files') && store.state.current != null;
  chat.addEventListener('dragenter', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    depth++;
    zone.hidden = false;
  });
  chat.addEventListener('dragover', (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
  });
  chat.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) zone.hidden = true; });
  chat.addEventListener('drop', (e) => {
    depth = 0;
    zone.hidden = true;
    if (!carriesFiles(e)) return;
    e.preventDefault();
    const files = [...(e.dataTransfer?.files ?? [])];
    if (files.length) { addFiles(files); $('composer').focus(); }
  });
}

/** @type {import('../../core/features.js').Feature} */
export default {
  name: 'files',
  views: new URL('./view.html', import.meta.url),
  start() {
    provideAttachments(wireTray(sendMessage));
    provideAttachmentsView(attachmentsView);
    wireViewer();
    wireDrop();
    const input = /** @type {HTMLInputElement} */ ($('file-input'));
    $('attach').addEventListener('click', () => input.click());
    input.addEventListener('change', () => {
      if (input.files?.length) addFiles([...input.files]);
      input.value = '';
      $('composer').focus();
    });
    $('composer').addEventListener('paste', (e) => {
      const data = e.clipboardData;
      if (!data || [...data.types].includes('text/plain')) return; // text pastes as text
      const images = [...data.files].filter((f) => f.type.startsWith('image/'));
      if (!images.length) return;
      e.preventDefault();
      for (const f of images) addFiles([f], { name: pastedName(f) });
    });
    wireRecorder((blob, ms) => {
      addFiles([blob], { voiceMs: ms, name: voiceName(blob) });
      holdSend(); // "stop and send": the message goes once the note is uploaded
    });
    // A send held for uploads belongs to the room it was asked in; a recording stops there too.
    store.subscribe('current', () => { dropHeldSend(); if (recording()) stop(false); });
    store.subscribe('me', ({ me }) => {
      if (me) return;
      if (recording()) stop(false);
      clearTray();
      showText('uploads-note', '');
    });
  },
};
