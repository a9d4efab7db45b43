// The proxy's JSON API (docs/api.md), as the page calls it: the browser
// session's cookie goes by itself (HttpOnly, the page never sees it); the
// CSRF token the login gave is echoed in X-Vigil-CSRF on every call.
const CSRF_KEY = 'vigil.csrf';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function csrfToken() { return localStorage.getItem(CSRF_KEY) || ''; }
export function forgetSession() { localStorage.removeItem(CSRF_KEY); }

export async function call(method, path, { query = null, body = null, raw = false } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== '' && v !== null && v !== undefined) q.set(k, v);
    const s = q.toString();
    if (s) url += '?' + s;
  }
  const headers = { 'X-Vigil-CSRF': csrfToken() };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== null) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (!r.ok) {
    let code = '', message = `the server answered ${r.status}`;
    try {
      const j = await r.json();
      if (j && j.error) { code = j.error.code || ''; message = j.error.message || message; }
    } catch (_) { /* not JSON */ }
    throw new ApiError(r.status, code, message);
  }
  if (raw) return r;
  if (r.status === 204) return null;
  return r.json();
}

export async function login(user, password, totp) {
  const body = { user, password };
  if (totp) body.totp_code = totp;
  const r = await call('POST', '/v1/webapi/sessions', { body });
  localStorage.setItem(CSRF_KEY, r.csrf_token);
  return r;
}

export async function logout() {
  try { await call('DELETE', '/v1/webapi/sessions/current'); } finally { forgetSession(); }
}

export const whoami = () => call('GET', '/v1/webapi/sessions/current');
export const find = () => call('GET', '/v1/webapi/find');
