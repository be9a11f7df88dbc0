// The management API under /api/v1, called with the project secret from this tab's sessionStorage
// (sent as the Authorization header only: no cookie, so no CSRF).
const SECRET = 'cohortcast.secret';

export const session = {
  secret: () => sessionStorage.getItem(SECRET),
  signIn: (secret) => sessionStorage.setItem(SECRET, secret),
  signOut: () => sessionStorage.removeItem(SECRET),
};

/** A refusal from the API, holding its status, code, its own message (shown to the person as it is) and, when the API names one, the JSON pointer of the place at fault in the request body. */
export class ApiFailure extends Error {
  constructor(status, code, message, path) {
    super(message);
    this.status = status;
    this.code = code;
    this.path = path;
  }
}

let onUnauthorized = () => {};
/** The shell's handler for a secret that stops being accepted mid-session (it signs the tab out). */
export const whenUnauthorized = (handler) => {
  onUnauthorized = handler;
};

/** A call to /api/v1; `query` values that are empty are left out. */
export async function api(path, { method = 'GET', body, query, secret = session.secret() } = {}) {
  const headers = { authorization: `Bearer ${secret}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`/api/v1${path}${queryString(query)}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : undefined;
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const failure = new ApiFailure(res.status, data?.error?.code ?? 'http_error', data?.error?.message ?? `the service answered HTTP ${res.status}`, data?.error?.path);
    if (res.status === 401 && secret === session.secret()) onUnauthorized('Your secret is no longer accepted; sign in again.');
    throw failure;
  }
  return data;
}

export function queryString(query) {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  const s = params.toString();
  return s ? `?${s}` : '';
}
