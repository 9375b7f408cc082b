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

export async function api(method, path, body) {
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

export const auth = {
  me: () => api('GET', '/api/auth/me'),
  register: (email, username, password) => api('POST', '/api/auth/register', { email, username, password }),
  login: (email, password) => api('POST', '/api/auth/login', { email, password }),
  logout: () => api('POST', '/api/auth/logout'),
};

export const rooms = {
  create: (name) => api('POST', '/api/rooms', name ? { name } : {}),
  get: (code) => api('GET', `/api/rooms/${encodeURIComponent(code)}`),
};
