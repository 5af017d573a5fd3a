// The app shell: the header, the router (history API paths, each served as
// index.html by the server) and the session's 401 handling. Each page is a
// view module exporting render(root, params) that may return a cleanup
// function, called when the page is left.
import { api, setUnauthorizedHandler } from "./api.js";
import { session } from "./session.js";
import { h, $, replace } from "./dom.js";

const routes = [
  { path: /^\/login$/, view: () => import("./views/auth.js").then((m) => m.login), public: true },
  { path: /^\/register$/, view: () => import("./views/auth.js").then((m) => m.register), public: true },
  { path: /^\/account$/, view: () => import("./views/auth.js").then((m) => m.account) },
  { path: /^\/$/, view: () => import("./views/meetings.js").then((m) => m.list) },
  { path: /^\/meetings\/new$/, view: () => import("./views/meetings.js").then((m) => m.schedule) },
  { path: /^\/m\/([^/]+)$/, view: () => import("./views/meeting.js").then((m) => m.page) },
];

let cleanup = null;
// flash is a message for the next page (the login page shows it in #session-message).
export let flash = "";

// navigate goes to path (pushing history unless replace is set) and renders it.
export function navigate(path, { replace: rep = false, message = "" } = {}) {
  flash = message;
  if (rep) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  return render();
}

async function render() {
  if (cleanup) { try { cleanup(); } catch (e) { console.warn("cleanup", e); } cleanup = null; }
  const path = location.pathname;
  const route = routes.find((r) => r.path.test(path));
  const root = $("#view");
  if (!route) { replace(root, h("h1", {}, "Not found"), h("p", {}, h("a", { href: "/" }, "Go to your meetings"))); return; }
  if (!route.public && !session.token) { return navigate("/login?next=" + encodeURIComponent(path + location.search), { replace: true, message: flash }); }
  if (!route.public && !session.user) {
    try { session.user = await api.me(); } catch (e) { if (!session.token) return; replace(root, h("p", { role: "alert" }, e.message)); return; }
  }
  renderHeader();
  const view = await route.view();
  const params = path.match(route.path).slice(1).map(decodeURIComponent);
  replace(root);
  cleanup = (await view(root, ...params)) || null;
  flash = "";
}

export function renderHeader() {
  const top = $("#top");
  const home = h("a", { id: "home-link", href: "/", class: "brand" }, "Meeting");
  if (!session.user) { replace(top, home); return; }
  replace(top, home, h("nav", { "aria-label": "Account" },
    h("span", { id: "whoami" }, session.user.username),
    h("a", { id: "account-link", href: "/account" }, "Account"),
    h("button", { id: "logout", type: "button", onclick: () => { session.drop(); navigate("/login", { message: "You have logged out." }); } }, "Log out")));
}

setUnauthorizedHandler((msg) => {
  session.drop();
  // The server says why (expired, revoked by a password change…).
  navigate("/login?next=" + encodeURIComponent(location.pathname + location.search),
    { replace: true, message: `Your session has ended (${msg}). Please log in again.` });
});

// Same-origin links navigate inside the app.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/assets/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", () => render());
render();
