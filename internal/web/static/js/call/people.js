// The participant list, with the host's mute and remove buttons.
import { h, replace } from "../dom.js";

export class People {
  // onMute(p), onRemove(p): the host's actions.
  constructor({ onMute, onRemove }) {
    this.onMute = onMute;
    this.onRemove = onRemove;
    this.list = h("ul", { id: "people-list" });
    this.title = h("h2", { id: "people-title" }, "People");
    this.el = h("aside", { id: "people", class: "panel", hidden: true, "aria-labelledby": "people-title" }, this.title, this.list);
  }

  // render shows me (a Participant) first, then the others; host is whether we may act.
  render(me, others, host) {
    const all = [...(me ? [me] : []), ...[...others].sort((a, b) => (a.name || "").localeCompare(b.name || ""))];
    this.title.textContent = `People (${all.length})`;
    replace(this.list, all.map((p) => {
      const self = me && p.id === me.id;
      const state = [p.host && "host", p.audio_muted && "muted", p.video_muted && "camera off", p.hand_raised && "hand raised"].filter(Boolean);
      const name = (p.name || p.user) + (self ? " (you)" : "");
      return h("li", { "data-participant": p.id, "data-user": p.name || p.user, "data-user-id": p.user },
        h("span", { class: "person-name" }, name),
        h("span", { class: "person-state" }, state.join(", ")),
        host && !self && !p.host ? h("span", { class: "person-actions" },
          h("button", { type: "button", class: "host-mute", "aria-label": `Mute ${name}`, onclick: () => this.onMute(p) }, "Mute"),
          h("button", { type: "button", class: "host-remove danger", "aria-label": `Remove ${name} from the call`, onclick: () => this.onRemove(p) }, "Remove")) : null);
    }));
  }

  setOpen(open) { this.el.hidden = !open; }
}
