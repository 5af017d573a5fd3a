// The chat panel: messages with names and local times, the unread count,
// and the history the server resends on every (re)connect, de-duplicated by
// from+at+text.
import { h, showError } from "../dom.js";

const MAX_BYTES = 4096;

export class Chat {
  // me() is our participant id (it changes on reconnect).
  constructor({ me }) {
    this.me = me;
    this.channel = null;
    this.seen = new Set();
    this.mine = new Set(); // our participant ids, old and new
    this.unread = 0;
    this.isOpen = false;
    this.list = h("ol", { id: "chat-messages", "aria-live": "polite", "aria-label": "Messages" });
    this.input = h("input", { id: "chat-input", type: "text", autocomplete: "off", maxlength: String(MAX_BYTES), placeholder: "Message everyone", "aria-label": "Message" });
    this.sendBtn = h("button", { id: "chat-send", type: "submit", disabled: true }, "Send");
    this.error = h("p", { id: "chat-error", role: "alert", hidden: true });
    this.badge = h("span", { id: "chat-unread", class: "badge", hidden: true, "aria-label": "unread messages" }, "0");
    this.el = h("aside", { id: "chat", class: "panel", hidden: true, "aria-labelledby": "chat-title" },
      h("h2", { id: "chat-title" }, "Chat"),
      this.list,
      this.error,
      h("form", { id: "chat-form", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
        h("label", { for: "chat-input", class: "visually-hidden" }, "Message"), this.input, this.sendBtn));
  }

  // attach takes the chat data channel of a (new) subscribe connection.
  attach(channel) {
    this.channel = channel;
    const ready = () => { if (this.channel === channel) this.sendBtn.disabled = false; };
    channel.onopen = ready;
    if (channel.readyState === "open") ready();
    channel.onclose = () => { if (this.channel === channel) { this.sendBtn.disabled = true; } };
    channel.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      try { this.add(JSON.parse(ev.data)); } catch (e) { console.warn("chat: bad message", e); }
    };
  }

  detach() {
    if (this.channel) { this.channel.onopen = this.channel.onclose = this.channel.onmessage = null; }
    this.channel = null;
    this.sendBtn.disabled = true;
  }

  // add shows a message {from, name, text, at} unless it is shown already.
  add(m) {
    if (!m || typeof m.text !== "string") return;
    const key = `${m.from}\u0000${m.at}\u0000${m.text}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const at = new Date(m.at);
    const time = Number.isNaN(at.getTime()) ? "" : at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const mine = m.from === this.me() || this.mine.has(m.from);
    const li = h("li", { class: mine ? "chat-message mine" : "chat-message", "data-from": m.from },
      h("span", { class: "chat-name" }, m.name || "Someone"),
      h("time", { class: "chat-time", datetime: m.at, title: Number.isNaN(at.getTime()) ? "" : at.toLocaleString() }, time),
      h("p", { class: "chat-text" }, m.text));
    // Keep time order: history may interleave with messages already shown.
    const after = [...this.list.children].reverse().find((x) => (x.querySelector("time")?.getAttribute("datetime") || "") <= (m.at || ""));
    if (after) after.after(li); else this.list.prepend(li);
    if (li === this.list.lastElementChild) this.list.scrollTop = this.list.scrollHeight;
    if (!mine && !this.isOpen) { this.unread++; this.renderBadge(); }
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    if (new TextEncoder().encode(text).length > MAX_BYTES) { showError(this.error, "The message is too long (at most 4096 bytes)."); return; }
    if (!this.channel || this.channel.readyState !== "open") { showError(this.error, "The chat is not connected yet. Try again in a moment."); return; }
    try {
      this.channel.send(JSON.stringify({ text }));
    } catch (e) {
      showError(this.error, "The message could not be sent. Try again.");
      console.warn("chat send", e);
      return;
    }
    showError(this.error, "");
    this.input.value = "";
  }

  // serverError shows a bad_chat from the server.
  serverError(message) { showError(this.error, message); }

  setOpen(open) {
    this.isOpen = open;
    this.el.hidden = !open;
    if (open) { this.unread = 0; this.renderBadge(); this.list.scrollTop = this.list.scrollHeight; }
  }

  renderBadge() {
    this.badge.textContent = String(this.unread);
    this.badge.hidden = this.unread === 0 || this.isOpen;
    this.badge.setAttribute("aria-label", `${this.unread} unread messages`);
  }
}
