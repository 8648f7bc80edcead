// @ts-check
// api.js — the REST client, the one place that knows the wire: JSON in and out, the CSRF
// double-submit header on writes, one refresh-and-retry on a 401 (shared by concurrent callers),
// and errors carrying the server's stable code.

/** The CSRF double-submit token every write carries in `X-CSRF-Token` (uploads set it themselves). */
export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)confab_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @param {string} method @param {string} path @param {unknown} [body] @returns {Promise<any>} */
async function rawApi(method, path, body) {
  /** @type {Record<string, string>} */
  const headers = { Accept: 'application/json' };
  /** @type {RequestInit} */
  const opts = { method, credentials: 'same-origin', headers };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch {
    throw new ApiError(0, 'offline', 'Cannot reach the server. Check your connection.');
  }
  let data = null;
  if (res.status !== 204) { try { data = await res.json(); } catch { /* empty body */ } }
  if (!res.ok) {
    const code = data?.error?.code || 'http_' + res.status;
    throw new ApiError(res.status, code, data?.error?.message || `Request failed (${res.status})`);
  }
  return data;
}

// Access tokens are short-lived: rotate the refresh cookie once (shared by concurrent callers).
/** @type {Promise<any> | null} */
let refreshing = null;
/** @returns {Promise<{token: string}>} */
export function refreshLogin() {
  refreshing ??= rawApi('POST', '/api/auth/refresh').finally(() => { refreshing = null; });
  return refreshing;
}

/**
 * A REST call; a 401 outside /api/auth/ refreshes the login once and tries again.
 * @param {'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'} method
 * @param {string} path
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, body) {
  try {
    return await rawApi(method, path, body);
  } catch (e) {
    if (e.status !== 401 || path.startsWith('/api/auth/')) throw e;
    await refreshLogin();
    return rawApi(method, path, body);
  }
}

// The session cookie is HttpOnly: this flag only remembers that this browser logged in, so a
// logged-out visit does not begin with a failing GET /api/me.
const SESSION_HINT = 'confab.session';
/** @param {boolean} on */
export function setSessionHint(on) {
  try { if (on) localStorage.setItem(SESSION_HINT, '1'); else localStorage.removeItem(SESSION_HINT); } catch { /* no storage */ }
}
export function hasSessionHint() {
  try { return localStorage.getItem(SESSION_HINT) !== null; } catch { return true; }
}
