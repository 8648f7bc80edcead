// @ts-check
// record.js — voice notes: the microphone button records with MediaRecorder (Opus, in WebM or
// Ogg, whichever the browser makes), a bar above the composer shows the running time with Cancel
// and "Stop and send"; stopped, the recording goes to the tray as a voice note (`?kind=voice&
// duration_ms=N`) and the message is sent once it is uploaded. Escape cancels.

import { $, showText } from '../../core/dom.js';
import { clock } from './format.js';

/** The container and codec asked for, first the browser makes wins (Chromium: WebM, Firefox: Ogg). */
const TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus', 'audio/webm', 'audio/ogg'];
/** A voice note stops by itself after this long (at 32 kbit/s about 4 MB, under the default 5 MB). */
const MAX_MS = 15 * 60 * 1000;
/** Shorter than this is a slip of the finger: nothing is sent. */
const MIN_MS = 500;

/**
 * The recording under way.
 * @type {{recorder: MediaRecorder, stream: MediaStream, chunks: Blob[], started: number, timer: number, send: boolean} | null}
 */
let rec = null;
/** What a finished recording goes to: the tray, then the send. @type {(blob: Blob, ms: number) => void} */
let deliver = () => {};

/** This browser can record (the button shows only then). */
export const canRecord = () => typeof MediaRecorder !== 'undefined' && !!navigator.mediaDevices?.getUserMedia;

/** Whether a recording is under way. */
export const recording = () => rec !== null;

function renderTime() {
  if (!rec) return;
  const ms = Date.now() - rec.started;
  $('rec-time').textContent = clock(ms);
  if (ms >= MAX_MS) stop(true);
}

/** Starts recording (asks for the microphone the first time). */
export async function startRecording() {
  if (rec) return;
  showText('compose-error', '');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (e) {
    const name = /** @type {any} */ (e)?.name;
    showText('compose-error', name === 'NotAllowedError' || name === 'SecurityError'
      ? 'The microphone is not allowed for this site. Allow it in the browser’s site settings to record a voice note.'
      : name === 'NotFoundError' ? 'No microphone was found.' : 'The microphone could not be started.');
    return;
  }
  if (rec) { stream.getTracks().forEach((t) => t.stop()); return; } // a second click while asking
  const mimeType = TYPES.find((t) => MediaRecorder.isTypeSupported(t));
  const recorder = new MediaRecorder(stream, { ...(mimeType ? { mimeType } : {}), audioBitsPerSecond: 32000 });
  const me = { recorder, stream, chunks: /** @type {Blob[]} */ ([]), started: Date.now(), timer: 0, send: false };
  rec = me;
  recorder.addEventListener('dataavailable', (e) => { if (e.data.size) me.chunks.push(e.data); });
  recorder.addEventListener('stop', () => finish(me));
  recorder.start(1000);
  me.timer = setInterval(renderTime, 250);
  $('rec-time').textContent = clock(0);
  $('recorder').hidden = false;
  $('record').setAttribute('aria-pressed', 'true');
  $('rec-send').focus();
}

/**
 * Stops the recording: `send` delivers it, else it is thrown away.
 * @param {boolean} send
 */
export function stop(send) {
  if (!rec) return;
  rec.send = send;
  clearInterval(rec.timer);
  if (rec.recorder.state !== 'inactive') rec.recorder.stop(); else finish(rec);
}

/** @param {NonNullable<typeof rec>} me */
function finish(me) {
  if (rec !== me) return;
  rec = null;
  me.stream.getTracks().forEach((t) => t.stop());
  $('recorder').hidden = true;
  $('record').setAttribute('aria-pressed', 'false');
  $('composer').focus();
  const ms = Date.now() - me.started;
  if (!me.send) return;
  if (ms < MIN_MS || !me.chunks.length) { showText('compose-error', 'That voice note was too short to send: hold on a little longer.'); return; }
  deliver(new Blob(me.chunks, { type: me.recorder.mimeType || me.chunks[0].type }), ms);
}

/**
 * Wires the record button and the bar; `onRecorded(blob, ms)` gets each voice note to send.
 * @param {(blob: Blob, ms: number) => void} onRecorded
 */
export function wireRecorder(onRecorded) {
  deliver = onRecorded;
  const btn = $('record');
  btn.hidden = !canRecord();
  btn.addEventListener('click', () => { if (rec) stop(true); else startRecording(); });
  $('rec-send').addEventListener('click', () => stop(true));
  $('rec-cancel').addEventListener('click', () => stop(false));
  $('recorder').addEventListener('keydown', (e) => { if (e.key === 'Escape') { e.preventDefault(); stop(false); } });
}
