// The REST API, in the seed's envelope {code, msg, data}. Every call returns
// data or throws an ApiError whose message is the server's msg, ready to show.
import { session } from "./session.js";

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

// onUnauthorized is called on any 401: the app drops the session and shows the login page.
let onUnauthorized = () => {};
export function setUnauthorizedHandler(f) { onUnauthorized = f; }

async function call(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined) url.searchParams.set(k, v);
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.token) headers.Authorization = "Bearer " + session.token;
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "The server cannot be reached. Check your connection and try again.");
  }
  let env = null;
  try { env = await res.json(); } catch { /* not JSON: handled below */ }
  if (res.status === 401 && session.token) {
    onUnauthorized(env?.msg || "the server refused the token");
  }
  if (!res.ok) {
    const retry = res.headers.get("Retry-After");
    throw new ApiError(res.status, env?.msg || `${res.status} ${res.statusText}`,
      { ...(env?.data || {}), retryAfter: retry ? Number(retry) : undefined });
  }
  return env?.data;
}

export const api = {
  login: (username, password) => call("POST", "/user/login", { body: { username, password } }),
  register: (username, password) => call("POST", "/user/register", { body: { username, password } }),
  me: () => call("GET", "/auth/user/info"),
  changePassword: (old_password, new_password) => call("PUT", "/auth/user/password", { body: { old_password, new_password } }),
  meetings: (query) => call("GET", "/auth/meeting/list", { query }),
  meeting: (identity) => call("GET", "/auth/meeting/get", { query: { identity } }),
  createMeeting: (m) => call("POST", "/auth/meeting/create", { body: m }),
  editMeeting: (m) => call("PUT", "/auth/meeting/edit", { body: m }),
  deleteMeeting: (identity) => call("DELETE", "/auth/meeting/delete", { query: { identity } }),
  members: (identity) => call("GET", "/auth/meeting/members", { query: { identity } }),
  addMembers: (identity, usernames) => call("POST", "/auth/meeting/members", { body: { identity, usernames } }),
  removeMember: (identity, username) => call("DELETE", "/auth/meeting/members", { query: { identity, username } }),
  join: (identity) => call("POST", "/auth/meeting/join", { body: { identity } }),
};
