// The grid of tiles: one per participant (camera video, name, muted and
// hand marks) and one per screen share (class "screen stage", shown large).
// #tiles carries data-count (the number of tiles) for the layout.
import { h } from "../dom.js";
import { setSink } from "./media.js";

export class Tiles {
  constructor() {
    this.el = h("div", { id: "tiles", "data-count": "0", role: "list", "aria-label": "Participants" });
    this.people = new Map(); // participant id → {tile, video, stream, audio, audioStream}
    this.screens = new Map(); // participant id → {tile, video, trackIds}
    this.received = new Map(); // server track id → MediaStreamTrack
    this.sinkId = "";
    this.speaking = null;
  }

  // person returns the tile of participant p ({id, user, name, …}), made on first use.
  person(p, { self = false } = {}) {
    let t = this.people.get(p.id);
    if (!t) {
      const video = h("video", { autoplay: true, playsinline: true, muted: true });
      video.muted = true;
      const name = h("span", { class: "tile-name" });
      const tile = h("div", { class: self ? "tile self" : "tile", role: "listitem", "data-participant": p.id, "data-user": userOf(p), "data-user-id": p.user },
        video, h("span", { class: "tile-avatar", "aria-hidden": "true" }), h("div", { class: "tile-label" }, name));
      t = { tile, video, name, stream: new MediaStream(), audio: null, audioStream: null };
      video.srcObject = t.stream;
      this.people.set(p.id, t);
      this.el.append(tile);
      this.count();
    }
    this.update(p, { self });
    return t;
  }

  // update shows p's name and state on its tile.
  update(p, { self } = {}) {
    const t = this.people.get(p.id);
    if (!t) return;
    const label = (p.name || p.user || "Someone") + (self ? " (you)" : "");
    t.name.textContent = label;
    t.tile.setAttribute("aria-label", label);
    t.tile.querySelector(".tile-avatar").textContent = (p.name || p.user || "?").slice(0, 1).toUpperCase();
    t.tile.dataset.user = userOf(p);
    t.tile.dataset.userId = p.user;
    setFlag(t.tile, "audioMuted", p.audio_muted);
    setFlag(t.tile, "videoMuted", p.video_muted);
    mark(t.tile, "tile-muted", p.audio_muted, "Microphone off");
    mark(t.tile, "tile-hand", p.hand_raised, "Hand raised");
    t.tile.classList.toggle("host", !!p.host);
  }

  // rename moves a tile to a new participant id (our own, after a reconnect).
  rename(oldId, p) {
    const t = this.people.get(oldId);
    if (!t || oldId === p.id) return;
    this.people.delete(oldId);
    this.people.set(p.id, t);
    t.tile.dataset.participant = p.id;
    const s = this.screens.get(oldId);
    if (s) { this.screens.delete(oldId); this.screens.set(p.id, s); s.tile.dataset.participant = p.id; }
  }

  // setLocalVideo shows our own camera (null: none) on our tile.
  setLocalVideo(id, track) {
    const t = this.people.get(id);
    if (!t) return;
    for (const old of t.stream.getVideoTracks()) t.stream.removeTrack(old);
    if (track) t.stream.addTrack(track);
    t.video.srcObject = t.stream;
  }

  // addTrack shows a received track: camera video on the participant's tile,
  // audio in its own audio element, a screen share on its own stage tile.
  // id is the server's track id (a reused receiver's track.id may be stale).
  addTrack(p, track, source, id = track.id) {
    this.received.set(id, track);
    if (source === "screen" && track.kind === "video") { this.screen(p, new MediaStream([track]), { ids: [id] }); return; }
    const t = this.person(p);
    if (track.kind === "audio") {
      if (!t.audio) {
        t.audioStream = new MediaStream();
        t.audio = h("audio", { autoplay: true });
        t.tile.append(t.audio);
        setSink(t.audio, this.sinkId);
      }
      t.audioStream.addTrack(track);
      t.audio.srcObject = t.audioStream;
      return;
    }
    for (const old of t.stream.getVideoTracks()) t.stream.removeTrack(old);
    t.stream.addTrack(track);
    t.video.srcObject = t.stream;
  }

  // removeTrack takes a received track off its tile.
  removeTrack(pid, trackId, source) {
    const track = this.received.get(trackId);
    this.received.delete(trackId);
    if (source === "screen") {
      const s = this.screens.get(pid);
      if (s && s.trackIds.has(trackId)) this.unscreen(pid);
      return;
    }
    const t = this.people.get(pid);
    if (!t || !track) return;
    for (const s of [t.stream, t.audioStream]) {
      if (s?.getTracks().includes(track)) s.removeTrack(track);
    }
  }

  // screen shows a screen share (ours or another's) as a large stage tile.
  screen(p, stream, { self = false, ids } = {}) {
    this.unscreen(p.id);
    const video = h("video", { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    video.srcObject = stream;
    const label = `${p.name || p.user || "Someone"}${self ? " (you)" : ""} is sharing the screen`;
    const tile = h("div", { class: self ? "tile screen stage self" : "tile screen stage", role: "listitem", "data-participant": p.id, "data-user": userOf(p), "data-user-id": p.user, "aria-label": label },
      video, h("div", { class: "tile-label" }, h("span", { class: "tile-name" }, label)));
    this.screens.set(p.id, { tile, video, trackIds: new Set(ids || stream.getTracks().map((x) => x.id)) });
    this.el.prepend(tile);
    this.count();
  }

  unscreen(pid) {
    const s = this.screens.get(pid);
    if (!s) return;
    s.video.srcObject = null;
    s.tile.remove();
    this.screens.delete(pid);
    this.count();
  }

  // remove takes a participant's tiles away.
  remove(pid) {
    this.unscreen(pid);
    const t = this.people.get(pid);
    if (!t) return;
    t.video.srcObject = null;
    if (t.audio) t.audio.srcObject = null;
    t.tile.remove();
    this.people.delete(pid);
    if (this.speaking === pid) this.speaking = null;
    this.count();
  }

  // setSpeaker marks pid (or nobody) as the active speaker.
  setSpeaker(pid) {
    if (this.speaking === pid) return;
    if (this.speaking) this.people.get(this.speaking)?.tile.classList.remove("speaking");
    this.speaking = pid;
    if (pid) this.people.get(pid)?.tile.classList.add("speaking");
  }

  // setSinkId routes every remote media element to the chosen speaker.
  setSinkId(id) {
    this.sinkId = id || "";
    for (const el of this.el.querySelectorAll("audio, video")) setSink(el, this.sinkId);
  }

  count() {
    const n = this.el.querySelectorAll(":scope > .tile").length;
    this.el.dataset.count = String(n);
    this.el.dataset.stage = String(this.screens.size > 0);
  }

  clear() {
    for (const el of this.el.querySelectorAll("audio, video")) el.srcObject = null;
    this.el.replaceChildren();
    this.people.clear();
    this.screens.clear();
    this.received.clear();
    this.count();
  }
}

// userOf is what data-user shows: the username (the join token's name,
// which the API sets to the username), else the user id.
function userOf(p) { return p.name || p.user || ""; }

function setFlag(el, key, on) {
  if (on) el.dataset[key] = "true";
  else delete el.dataset[key];
}

// mark adds the marker element cls to tile while on, and removes it after.
function mark(tile, cls, on, text) {
  const label = tile.querySelector(".tile-label");
  const el = label.querySelector("." + cls);
  if (on && !el) label.append(h("span", { class: cls, role: "img", "aria-label": text, title: text }, cls === "tile-hand" ? "Hand" : "Muted"));
  if (!on && el) el.remove();
}
