// The signalling WebSocket (docs/signaling.md): it sends join with the token
// as its first message and hands every server message, in order, to
// onMessage. Messages are handled one after another (an async handler is
// awaited before the next message), so offers are answered in order.

export class Signal {
  // url: the signal_url of the join; token: the join token.
  // handlers: {onMessage(m) (may be async), onClose({code, reason, expected})}.
  constructor(url, token, { onMessage, onClose }) {
    this.closed = false;
    this.queue = Promise.resolve();
    // The global constructor at connect time (tests wrap it).
    const ws = new window.WebSocket(url);
    this.ws = ws;
    ws.onopen = () => this.send({ type: "join", token });
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let m;
      try { m = JSON.parse(ev.data); } catch { console.warn("signal: not JSON", ev.data); return; }
      this.queue = this.queue
        .then(() => (this.closed ? undefined : onMessage(m)))
        .catch((e) => console.warn("signal: handling", m.type, e));
    };
    ws.onclose = (ev) => {
      const expected = this.closed;
      this.closed = true;
      onClose({ code: ev.code, reason: ev.reason, expected });
    };
    ws.onerror = () => { /* onclose follows and says what to do */ };
  }

  get open() { return !this.closed && this.ws.readyState === WebSocket.OPEN; }

  send(m) {
    if (!this.open) return false;
    try { this.ws.send(JSON.stringify(m)); return true; } catch (e) { console.warn("signal: send", e); return false; }
  }

  // close ends the connection on purpose (no reconnect follows); leave says goodbye first.
  close({ leave = false } = {}) {
    if (this.closed) return;
    if (leave) this.send({ type: "leave" });
    this.closed = true;
    const ws = this.ws;
    // Closing a socket that is still connecting makes the browser log an error: close it once open.
    if (ws.readyState === WebSocket.CONNECTING) { ws.onopen = () => ws.close(1000); return; }
    try { ws.close(1000, leave ? "leave" : ""); } catch { /* already closing */ }
  }
}
