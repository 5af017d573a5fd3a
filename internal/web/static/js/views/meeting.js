// One meeting's page: details, members, join. (W-app fills it in; the
// pre-join and the call are js/call/, by W-call.)
import { h } from "../dom.js";
export function page(root, identity) { root.append(h("h1", { id: "meeting-title" }, identity)); }
