// The two peer connections of docs/signaling.md, both trickling their ICE
// candidates (a browser that waits for gathering to complete can stall):
// Subscriber answers the server's offers and receives the others' tracks
// and the chat channel; Publisher offers what this client sends, one offer
// at a time, naming each track's source.

const ANSWER_TIMEOUT_MS = 15000;

function newPeerConnection(config) {
  // The global constructor at connect time (tests wrap it).
  return new window.RTCPeerConnection(config);
}

// candidateInit is what the server wants of an RTCIceCandidate.
function candidateInit(c) {
  const j = c.toJSON ? c.toJSON() : c;
  const out = { candidate: j.candidate };
  if (j.sdpMid != null) out.sdpMid = j.sdpMid;
  if (j.sdpMLineIndex != null) out.sdpMLineIndex = j.sdpMLineIndex;
  if (j.usernameFragment != null) out.usernameFragment = j.usernameFragment;
  return out;
}

// Trickle sends a connection's candidates once its first description went
// out (earlier ones are refused by the server), holding them until then.
class Trickle {
  constructor(send, target) { this.send = send; this.target = target; this.ready = false; this.held = []; }
  add(c) {
    if (!c || !c.candidate) return; // the end of gathering
    if (this.ready) this.send({ type: "candidate", target: this.target, candidate: candidateInit(c) });
    else this.held.push(c);
  }
  open() {
    if (this.ready) return;
    this.ready = true;
    for (const c of this.held.splice(0)) this.add(c);
  }
}

export class Subscriber {
  // send: sends a signalling message; on: {track(ev), datachannel(ev), failed()}.
  constructor(config, send, on) {
    this.send = send;
    this.msids = new Map();
    this.pc = newPeerConnection(config);
    this.trickle = new Trickle(send, "subscribe");
    this.pc.onicecandidate = (e) => this.trickle.add(e.candidate);
    this.pc.ontrack = on.track;
    this.pc.ondatachannel = on.datachannel;
    this.pc.onconnectionstatechange = () => { if (this.pc.connectionState === "failed") on.failed(); };
  }

  // offer applies the server's offer and sends the answer.
  async offer(sdp) {
    // Track ids come from the offer's a=msid lines, by mid: a receiver that
    // the server reuses for another track keeps its first track's id.
    this.msids = msidByMid(sdp);
    await this.pc.setRemoteDescription({ type: "offer", sdp });
    await this.pc.setLocalDescription(await this.pc.createAnswer());
    this.send({ type: "answer", sdp: this.pc.localDescription.sdp });
    this.trickle.open();
  }

  close() { closePC(this.pc); }
}

function closePC(pc) {
  pc.onicecandidate = pc.ontrack = pc.ondatachannel = pc.onconnectionstatechange = null;
  try { pc.close(); } catch { /* closed */ }
}

// msidByMid maps each media section's mid to the track id of its a=msid line.
export function msidByMid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\n(?=m=)/).slice(1)) {
    const mid = /^a=mid:(\S+)/m.exec(section);
    const msid = /^a=msid:\S+ (\S+)/m.exec(section);
    if (mid && msid) out.set(mid[1], msid[1]);
  }
  return out;
}

export class Publisher {
  // send: sends a signalling message; on: {failed(), error(message)}.
  constructor(config, send, on) {
    this.config = config;
    this.send = send;
    this.on = on;
    this.pc = null;
    this.sources = new Map(); // "audio" | "camera" | "screen" → RTCRtpTransceiver
    this.streams = new Map(); // source → MediaStream its track is sent in
    this.dirty = false;
    this.running = false;
    this.waiting = null; // {resolve, reject} of the answer to the offer in flight
    this.closed = false;
  }

  ensure() {
    if (this.pc) return this.pc;
    this.pc = newPeerConnection(this.config);
    this.trickle = new Trickle(this.send, "publish");
    this.pc.onicecandidate = (e) => this.trickle.add(e.candidate);
    this.pc.onconnectionstatechange = () => { if (this.pc?.connectionState === "failed") this.on.failed(); };
    return this.pc;
  }

  // set sends track as source ("audio", "camera" or "screen"); a null track
  // stops sending it: the camera keeps its slot (replaceTrack(null), no
  // renegotiation), a screen share's track is removed (renegotiated).
  async set(source, track, stream) {
    if (this.closed) return;
    const tr = this.sources.get(source);
    if (tr) {
      if (track) { await tr.sender.replaceTrack(track); return; }
      if (source === "screen") {
        this.sources.delete(source);
        this.pc.removeTrack(tr.sender);
        this.negotiate();
      } else {
        await tr.sender.replaceTrack(null);
      }
      return;
    }
    if (!track) return;
    const pc = this.ensure();
    const s = stream || new MediaStream([track]);
    this.streams.set(source, s);
    this.sources.set(source, pc.addTransceiver(track, { direction: "sendonly", streams: [s] }));
    this.negotiate();
  }

  // answer is the server's answer to the offer in flight.
  answer(sdp) {
    const w = this.waiting;
    if (!w) { console.warn("signal: an answer without an offer"); return; }
    this.waiting = null;
    w.resolve(sdp);
  }

  // refused is the server's negotiation_failed for the offer in flight; it
  // reports whether an offer was waiting.
  refused(message) {
    const w = this.waiting;
    if (!w) return false;
    this.waiting = null;
    w.reject(new Error(message || "negotiation failed"));
    return true;
  }

  // negotiate makes sure an offer with the current tracks reaches the
  // server: one offer at a time, a new one after the answer if more changed.
  negotiate() {
    this.dirty = true;
    if (this.running || this.closed) return;
    this.running = true;
    this.loop().catch((e) => console.warn("publish", e)).finally(() => { this.running = false; });
  }

  async loop() {
    let failures = 0;
    while (this.dirty && !this.closed) {
      this.dirty = false;
      try {
        await this.offerOnce();
        failures = 0;
      } catch (e) {
        if (this.closed) return;
        console.warn("publish: offer refused or lost:", e.message);
        if (this.pc.signalingState === "have-local-offer") {
          await this.pc.setLocalDescription({ type: "rollback" }).catch((err) => console.warn("rollback", err));
        }
        if (++failures >= 3) { this.on.error(`Your camera and microphone could not be sent: ${e.message}`); return; }
        await new Promise((r) => setTimeout(r, 1500 * failures));
        this.dirty = true;
      }
    }
  }

  async offerOnce() {
    const pc = this.pc;
    await pc.setLocalDescription(await pc.createOffer());
    if (this.closed) return;
    const ids = msidByMid(pc.localDescription.sdp);
    const tracks = [];
    for (const [source, tr] of this.sources) {
      const id = tr.mid != null && ids.get(tr.mid);
      if (id) tracks.push({ id, source });
    }
    const answer = new Promise((resolve, reject) => {
      const timer = setTimeout(() => { if (this.waiting?.timer === timer) { this.waiting = null; reject(new Error("no answer")); } }, ANSWER_TIMEOUT_MS);
      this.waiting = {
        timer,
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
    this.send({ type: "offer", sdp: pc.localDescription.sdp, tracks });
    this.trickle.open();
    const sdp = await answer;
    if (this.closed) return;
    await pc.setRemoteDescription({ type: "answer", sdp });
  }

  // senders lists the RTCRtpSenders with a track and their source.
  senders() {
    return [...this.sources].map(([source, tr]) => ({ source, sender: tr.sender })).filter((s) => s.sender.track);
  }

  close() {
    this.closed = true;
    if (this.waiting) { const w = this.waiting; this.waiting = null; w.reject(new Error("closed")); }
    if (this.pc) { closePC(this.pc); this.pc = null; }
  }
}
