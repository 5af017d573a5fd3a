// A stand-in for W-call's pre-join, so the meeting page can be tried before
// the call exists. It is replaced by W-call's js/call/prejoin.js.
import { h } from "../dom.js";

export function mountPrejoin(container, ctx) {
  const back = h("button", { type: "button", onclick: () => ctx.onExit() }, "Back to the meeting");
  container.append(h("section", { id: "prejoin", class: "card" },
    h("h2", {}, `Join ${ctx.meeting.name}`),
    h("p", { id: "prejoin-message", role: "alert" }, "The call is not built yet."),
    h("button", { id: "join-call", type: "button", disabled: true }, "Join now"),
    " ", back));
  back.focus();
  return () => container.replaceChildren();
}
