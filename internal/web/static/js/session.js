// The API token of this tab's session, and who it belongs to.
const KEY = "meeting.token";

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  set(token) { sessionStorage.setItem(KEY, token); },
  drop() { sessionStorage.removeItem(KEY); this.user = null; },
  // user is {id, username, created_at} once fetched.
  user: null,
};
