// The list of my meetings and the schedule form. (W-app fills these in.)
import { h } from "../dom.js";
export function list(root) { root.append(h("h1", {}, "Meetings")); }
export function schedule(root) { root.append(h("h1", {}, "Schedule a meeting")); }
