// api.js — the REST client: JSON in and out, the CSRF double-submit header on writes, one
// refresh-and-retry on a 401, and errors carrying the server's stable code.

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)confab_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function rawApi(method, path, body) {
  const opts = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') opts.headers['X-CSRF-Token'] = csrfToken();
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
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
let refreshing = null;
export function refreshLogin() {
  refreshing ??= rawApi('POST', '/api/auth/refresh').finally(() => { refreshing = null; });
  return refreshing;
}

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
export function setSessionHint(on) {
  try { if (on) localStorage.setItem(SESSION_HINT, '1'); else localStorage.removeItem(SESSION_HINT); } catch { /* no storage */ }
}
export function hasSessionHint() {
  try { return localStorage.getItem(SESSION_HINT) !== null; } catch { return true; }
}
