// Login, registration and the account page (change password). Logout is in
// the header (app.js).
import { api } from "../api.js";
import { session } from "../session.js";
import { h, showError } from "../dom.js";
import { flash, navigate, renderHeader } from "../app.js";
import { checkLoginPassword, checkNewPassword, checkNewUsername, checkUsername, MAX_PASSWORD_BYTES, MIN_PASSWORD_BYTES } from "../check.js";
import { alert, field, note, onSubmit, refuse } from "./ui.js";

// safeNext is the ?next= page to go to after logging in: a path of this
// site only, never another origin ("//host" or "/\host").
function safeNext() {
  const next = new URLSearchParams(location.search).get("next") || "";
  return /^\/(?![/\\])/.test(next) ? next : "/";
}

// logIn keeps the token and forgets whose the previous one was; the
// router fetches the user on the next page. A session this tab still has
// ends first: a refused login must not count as that session's 401.
async function logIn(username, password) {
  if (session.token) { session.drop(); renderHeader(); }
  const tok = await api.login(username, password);
  session.set(tok.token);
  session.user = null;
}

export function login(root) {
  const message = h("p", { id: "session-message", role: "status", class: "note", hidden: !flash }, flash || "");
  const username = field("Username", { id: "login-username", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
  const password = field("Password", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const submit = h("button", { id: "login-submit", type: "submit", class: "primary" }, "Log in");
  const error = alert("login-error");
  const form = h("form", { id: "login-form", class: "card narrow", novalidate: true },
    h("h1", {}, "Log in"), message, username, password, error,
    h("div", { class: "actions" }, submit),
    h("p", {}, "No account yet? ", h("a", { id: "to-register", href: "/register" + location.search }, "Register")));
  onSubmit(form, {
    submit, error,
    run: async () => {
      const u = form.elements.username, p = form.elements.password;
      refuse(checkUsername(u.value.trim()), u);
      refuse(checkLoginPassword(p.value), p);
      await logIn(u.value.trim(), p.value);
      await navigate(safeNext(), { replace: true });
    },
  });
  root.append(form);
  form.elements.username.focus();
}

export function register(root) {
  const username = field("Username", { id: "register-username", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false", maxlength: 100 },
    "3 to 100 characters: lowercase letters, digits, '.', '_' or '-'.");
  const password = field("Password", { id: "register-password", name: "password", type: "password", autocomplete: "new-password", required: true },
    `${MIN_PASSWORD_BYTES} to ${MAX_PASSWORD_BYTES} characters.`);
  const submit = h("button", { id: "register-submit", type: "submit", class: "primary" }, "Register");
  const error = alert("register-error");
  const form = h("form", { id: "register-form", class: "card narrow", novalidate: true },
    h("h1", {}, "Register"), username, password, error,
    h("div", { class: "actions" }, submit),
    h("p", {}, "Have an account? ", h("a", { id: "to-login", href: "/login" + location.search }, "Log in")));
  onSubmit(form, {
    submit, error,
    run: async () => {
      const u = form.elements.username, p = form.elements.password;
      refuse(checkNewUsername(u.value.trim()), u);
      refuse(checkNewPassword(p.value), p);
      await api.register(u.value.trim(), p.value);
      await logIn(u.value.trim(), p.value);
      await navigate("/", { replace: true });
    },
  });
  root.append(form);
  form.elements.username.focus();
}

export function account(root) {
  const old = field("Current password", { id: "password-old", name: "old", type: "password", autocomplete: "current-password", required: true });
  const neu = field("New password", { id: "password-new", name: "new", type: "password", autocomplete: "new-password", required: true },
    `${MIN_PASSWORD_BYTES} to ${MAX_PASSWORD_BYTES} characters. Your other sessions will be logged out.`);
  const submit = h("button", { id: "password-submit", type: "submit", class: "primary" }, "Change password");
  const error = alert("password-error");
  const ok = note("password-ok");
  const form = h("form", { id: "password-form", class: "card measure", novalidate: true },
    h("h2", {}, "Change password"), old, neu, error, ok,
    h("div", { class: "actions" }, submit));
  onSubmit(form, {
    submit, error,
    run: async () => {
      showError(ok, "");
      const o = form.elements.old, n = form.elements.new;
      refuse(o.value ? "" : "Enter your current password.", o);
      refuse(checkNewPassword(n.value, "The new password"), n);
      // The server revokes every older token, this one too, and answers
      // a new one: keep it, so this tab stays logged in.
      const tok = await api.changePassword(o.value, n.value);
      session.set(tok.token);
      form.reset();
      showError(ok, "Password changed. Your other sessions have been logged out.");
    },
  });
  const u = session.user;
  root.append(h("h1", {}, "Account"),
    h("p", { class: "muted" }, "Logged in as ", h("strong", {}, u?.username || ""),
      u?.created_at ? `; account created ${new Date(u.created_at).toLocaleDateString()}.` : "."),
    form);
}
