// @ts-check
// upload.js — sending one file to POST /api/uploads (the raw bytes, its name in `?name=`; a
// voice note also says `?kind=voice&duration_ms=N`) with XMLHttpRequest, whose upload progress
// fetch cannot report yet; a 401 refreshes the login once and sends again, as `api()` does. And
// what a person reads when the server refuses a file: which limit it hit, in words.

import { ApiError, csrfToken, refreshLogin } from '../../core/api.js';
import { sentence } from '../../core/dom.js';
import { fileSize } from './format.js';

/** @typedef {import('../../core/types.js').Upload} Upload */

/**
 * The limits the server has when it does not say (the defaults of `confab serve`): bytes per
 * kind of file. A refusal that names its limit (`error.limit`) wins.
 */
const DEFAULT_LIMITS = { image: 10 * 1024 * 1024, voice: 5 * 1024 * 1024, file: 25 * 1024 * 1024 };

/** An upload's refusal: the server's error object beside its code, for the limit it names. */
export class UploadError extends ApiError {
  /**
   * @param {number} status @param {string} code @param {string} message
   * @param {Record<string, any>} [detail]  the server's `error` object
   */
  constructor(status, code, message, detail = {}) {
    super(status, code, message);
    this.detail = detail;
  }
}

/**
 * An upload under way: `done` settles with the stored upload (or an `UploadError`, code
 * `aborted` after `abort()`).
 * @typedef {{done: Promise<Upload>, abort: () => void}} Sending
 */

/**
 * Sends `file` as `name`; `onProgress(sent, total)` as its bytes go out.
 * @param {Blob} file
 * @param {string} name
 * @param {{voiceMs?: number, onProgress?: (sent: number, total: number) => void}} [opts]
 * @returns {Sending}
 */
export function upload(file, name, { voiceMs, onProgress } = {}) {
  /** @type {XMLHttpRequest | null} */
  let xhr = null;
  let aborted = false;
  const params = new URLSearchParams({ name });
  if (voiceMs != null) { params.set('kind', 'voice'); params.set('duration_ms', String(Math.round(voiceMs))); }
  const once = () => new Promise((resolve, reject) => {
    if (aborted) return reject(new UploadError(0, 'aborted', 'The upload was cancelled.'));
    const req = new XMLHttpRequest();
    xhr = req;
    req.open('POST', `/api/uploads?${params}`);
    req.setRequestHeader('Accept', 'application/json');
    req.setRequestHeader('X-CSRF-Token', csrfToken());
    req.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    req.upload.addEventListener('progress', (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size));
    req.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(req.responseText); } catch { /* not JSON */ }
      if (req.status >= 200 && req.status < 300 && data?.id) return resolve(data);
      const err = data?.error ?? {};
      reject(new UploadError(req.status, err.code || `http_${req.status}`, err.message || `Upload failed (${req.status})`, err));
    });
    req.addEventListener('error', () => reject(new UploadError(0, 'offline', 'The upload was cut off.')));
    req.addEventListener('abort', () => reject(new UploadError(0, 'aborted', 'The upload was cancelled.')));
    req.send(file);
  });
  const done = once().catch(async (e) => {
    if (e.status !== 401 || aborted) throw e;
    await refreshLogin();
    return once();
  });
  return { done, abort: () => { aborted = true; xhr?.abort(); } };
}

/** The kind of limit a file counts against, as the server will judge it (images by their type). @param {Blob} file @param {boolean} voice */
export const limitKind = (file, voice) => (voice ? 'voice' : file.type.startsWith('image/') ? 'image' : 'file');

const KIND_WORDS = { image: 'An image', voice: 'A voice note', file: 'A file' };

/**
 * What a person reads when the upload of `name` (`size` bytes, counting against `kind`) failed
 * with `e`: the limit it hit, in words.
 * @param {any} e  an UploadError (or any error)
 * @param {string} name
 * @param {number} size
 * @param {'image' | 'voice' | 'file'} kind
 */
export function refusalText(e, name, size, kind) {
  const d = e?.detail ?? {}, message = String(e?.message || ''), server = sentence(message);
  // The limit: the error's `limit` field, else the number the server's message names.
  const limit = typeof d.limit === 'number' ? d.limit : Number(message.match(/(\d+) (?:bytes|uploads)/)?.[1] ?? NaN);
  const known = Number.isFinite(limit) ? limit : null;
  switch (e?.code) {
    case 'too_large': {
      // The server says which kind it judged the file to be ("an image is at most … bytes").
      const judged = /^an image/i.test(message) ? 'image' : /^a voice note/i.test(message) ? 'voice' : /^a file/i.test(message) ? 'file' : kind;
      const max = known ?? DEFAULT_LIMITS[judged];
      return `“${name}” is too large to send (${fileSize(size)}). ${KIND_WORDS[judged]} can be at most ${fileSize(max)}.`;
    }
    case 'unsupported_type':
      if (kind === 'voice') return `The voice note was not sent. ${server}`;
      return `“${name}” cannot be sent: only images, audio, PDF, text, office documents and archives can, `
        + 'and its content is none of these (whatever its name says).';
    case 'quota_exceeded':
      return `“${name}” was not sent: you have used all the storage for your files${known != null ? ` (${fileSize(known)})` : ''}. `
        + 'Files of messages you delete free it again.';
    case 'rate_limited':
      return `“${name}” was not sent: you are sending files too fast${known != null ? ` (at most ${known} a minute)` : ''}. `
        + 'Wait a minute, then try again.';
    case 'offline':
      return `The upload of “${name}” was cut off. Check your connection and try again.`;
    case 'invalid':
      return `“${name}” was not sent. ${server}`;
    default:
      return `“${name}” was not sent. ${server || 'Something went wrong.'}`;
  }
}
