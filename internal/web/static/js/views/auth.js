// Login, registration and the account page. (W-app fills these in.)
import { h } from "../dom.js";
export function login(root) { root.append(h("h1", {}, "Log in")); }
export function register(root) { root.append(h("h1", {}, "Register")); }
export function account(root) { root.append(h("h1", {}, "Account")); }
