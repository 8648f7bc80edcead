// @ts-check
// format.js — a file's size and a recording's length as people read them, and whether a signed
// media URL has expired.

const UNITS = ['KB', 'MB', 'GB'];

/**
 * A size in bytes as "512 bytes", "14 KB", "3.2 MB" (1 KB = 1024 bytes, the browser's number format).
 * @param {number} bytes
 */
export function fileSize(bytes) {
  if (bytes < 1024) return `${bytes.toLocaleString()} ${bytes === 1 ? 'byte' : 'bytes'}`;
  let n = bytes / 1024, unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) { n /= 1024; unit++; }
  return `${n.toLocaleString(undefined, { maximumFractionDigits: n < 10 ? 1 : 0 })} ${UNITS[unit]}`;
}

/**
 * A length of time as a clock: "0:07", "12:30", "1:02:03".
 * @param {number} ms
 */
export function clock(ms) {
  const total = Math.max(0, Math.floor((Number.isFinite(ms) ? ms : 0) / 1000));
  const h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/**
 * A length of time in words, for screen readers: "7 seconds", "2 minutes 5 seconds".
 * @param {number} ms
 */
export function duration(ms) {
  const total = Math.max(0, Math.round((Number.isFinite(ms) ? ms : 0) / 1000));
  const m = Math.floor(total / 60), s = total % 60;
  const part = (/** @type {number} */ n, /** @type {string} */ w) => `${n} ${w}${n === 1 ? '' : 's'}`;
  return m ? (s ? `${part(m, 'minute')} ${part(s, 'second')}` : part(m, 'minute')) : part(s, 'second');
}

/** A media URL's expiry has passed, or passes within a few seconds (`blob:` URLs never expire). @param {string | undefined} url */
export function expired(url) {
  if (!url || url.startsWith('blob:')) return !url;
  const exp = Number(new URL(url, location.href).searchParams.get('exp'));
  return !!exp && exp * 1000 < Date.now() + 5000;
}

/** What a file is, from its type, in a word or two: "PDF", "ZIP archive", "text". @param {string} mime @param {string} name */
export function typeWord(mime, name) {
  mime = mime.split(';')[0].trim().toLowerCase();
  const known = /** @type {Record<string, string>} */ ({
    'application/pdf': 'PDF', 'application/zip': 'ZIP archive', 'application/gzip': 'gzip archive',
    'application/x-tar': 'tar archive', 'application/x-7z-compressed': '7-Zip archive', 'text/plain': 'text',
    'text/csv': 'CSV', 'application/msword': 'Word document', 'application/vnd.ms-excel': 'Excel sheet',
  })[mime];
  if (known) return known;
  if (mime.includes('wordprocessingml') || mime.includes('opendocument.text')) return 'document';
  if (mime.includes('spreadsheetml') || mime.includes('opendocument.spreadsheet')) return 'spreadsheet';
  if (mime.includes('presentationml') || mime.includes('opendocument.presentation')) return 'presentation';
  const ext = name.includes('.') ? name.split('.').pop() : '';
  return ext && ext.length <= 5 ? ext.toUpperCase() : 'file';
}
