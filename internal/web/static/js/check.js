// Client-side checks that mirror the server's (internal/server/input.go and
// the meeting service). They save a round trip; the server still decides,
// and its message is shown when it refuses. Each returns "" when the input
// is acceptable, or what is wrong.

const USERNAME = /^[a-z0-9][a-z0-9._-]{2,99}$/;
export const MIN_PASSWORD_BYTES = 8;
export const MAX_PASSWORD_BYTES = 72;
export const MAX_NAME_CHARS = 200;
export const MAX_DURATION_MINUTES = 24 * 60;
// MAX_PARTICIPANTS is how many usernames one request may invite.
export const MAX_PARTICIPANTS = 1000;
// A meeting's max_participants: 1 to MAX_ROOM, DEFAULT_ROOM when not chosen.
export const MAX_ROOM = 1000;
export const DEFAULT_ROOM = 50;

const bytes = (s) => new TextEncoder().encode(s).length;

// A new account's username: lower case only, as the server stores it.
export function checkNewUsername(name) {
  if (!USERNAME.test(name)) {
    return "Username must be 3 to 100 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit.";
  }
  return "";
}

// A username to log in with or to invite: any letter case.
export function checkUsername(name) {
  if (!name) return "Enter a username.";
  if (name.length > 100 || !USERNAME.test(name.toLowerCase())) return `"${name}" is not a valid username.`;
  return "";
}

export function checkNewPassword(p, what = "Password") {
  const n = bytes(p);
  if (n < MIN_PASSWORD_BYTES || n > MAX_PASSWORD_BYTES) {
    return `${what} must be ${MIN_PASSWORD_BYTES} to ${MAX_PASSWORD_BYTES} bytes long.`;
  }
  return "";
}

export function checkLoginPassword(p) {
  if (!p) return "Enter your password.";
  if (bytes(p) > MAX_PASSWORD_BYTES) return `Password must be at most ${MAX_PASSWORD_BYTES} bytes long.`;
  return "";
}

// A meeting's name, already trimmed.
export function checkMeetingName(name) {
  if (!name) return "Give the meeting a name.";
  if ([...name].length > MAX_NAME_CHARS) return `The name has ${[...name].length} characters; at most ${MAX_NAME_CHARS}.`;
  if (/[\p{Cc}\p{Cf}\uFFFD]/u.test(name)) return "The name must not contain control or invisible characters.";
  return "";
}

// A meeting's max_participants, as the number the form read.
export function checkMaxParticipants(n) {
  if (!Number.isInteger(n) || n < 1 || n > MAX_ROOM) return `Max participants must be a whole number from 1 to ${MAX_ROOM}.`;
  return "";
}

// splitUsernames reads a comma- or space-separated list of usernames.
export function splitUsernames(text) {
  return text.split(/[\s,;]+/).filter(Boolean);
}

export function checkUsernames(names) {
  if (names.length > MAX_PARTICIPANTS) return `At most ${MAX_PARTICIPANTS} participants.`;
  for (const n of names) {
    const err = checkUsername(n);
    if (err) return err;
  }
  return "";
}
