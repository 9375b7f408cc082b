// JSON calls to the services behind the edge. The session is the
// HttpOnly chat_session cookie, so every call is same-origin with credentials.

export class ApiError extends Error {
  constructor(status, detail, headers = null) {
    super(typeof detail === 'string' ? detail : `HTTP ${status}`);
    this.status = status; // 0 when the network failed
    this.detail = detail;
    this.headers = headers;
  }

  /** Seconds from a Retry-After header, or null. */
  get retryAfter() {
    const v = this.headers && this.headers.get('Retry-After');
    if (!v) return null;
    const n = Number(v);
    if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
    const when = Date.parse(v);
    return Number.isFinite(when) ? Math.max(0, Math.ceil((when - Date.now()) / 1000)) : null;
  }
}

async function request(method, path, body) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, null);
  }
  let data = null;
  if (res.status !== 204) {
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try { data = await res.json(); } catch { data = null; }
    }
  }
  if (!res.ok) throw new ApiError(res.status, data && 'detail' in data ? data.detail : null, res.headers);
  return data;
}

// The chat_session cookie holds a short-lived access token; the auth API
// swaps the refresh cookie (chat_refresh, sent only to /api/auth) for a new
// pair. Refresh shortly before the access token expires, and once more when
// a call answers 401, then repeat that call.
const NO_RETRY = new Set(['/api/auth/login', '/api/auth/register', '/api/auth/refresh']);
let refreshing = null;
let refreshTimer = null;

function scheduleRefresh(expiresIn) {
  clearTimeout(refreshTimer);
  const seconds = Number(expiresIn);
  if (!Number.isFinite(seconds) || seconds <= 0) return;
  refreshTimer = setTimeout(() => { refreshSession(); }, Math.max(10, seconds * 0.8) * 1000);
}

export function stopRefreshing() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
}

/** A new access token from the refresh cookie; resolves to the user, or null when there is no session. */
export function refreshSession() {
  if (!refreshing) {
    refreshing = request('POST', '/api/auth/refresh')
      .then((res) => {
        scheduleRefresh(res && res.expires_in);
        return (res && res.user) || null;
      }, (err) => {
        if (err.status === 0 || err.status >= 500) throw err;
        stopRefreshing();
        return null;
      })
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

export async function api(method, path, body) {
  try {
    return await request(method, path, body);
  } catch (err) {
    if (err.status !== 401 || NO_RETRY.has(path)) throw err;
    let user = null;
    try { user = await refreshSession(); } catch { user = null; }
    if (!user) throw err;
    return request(method, path, body);
  }
}

export const auth = {
  me: () => api('GET', '/api/auth/me'),
  register: (email, username, password) => api('POST', '/api/auth/register', { email, username, password }),
  async login(email, password) {
    const res = await api('POST', '/api/auth/login', { email, password });
    scheduleRefresh(res && res.expires_in);
    return res;
  },
  async logout() {
    stopRefreshing();
    return api('POST', '/api/auth/logout');
  },
};

export const rooms = {
  create: (name) => api('POST', '/api/rooms', name ? { name } : {}),
  get: (code) => api('GET', `/api/rooms/${encodeURIComponent(code)}`),
};
