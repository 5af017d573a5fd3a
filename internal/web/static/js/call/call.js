// The call: joins through the API, speaks docs/signaling.md over one
// WebSocket and two peer connections, shows the tiles, the controls, the
// chat and the participant list, and reconnects by itself when the
// WebSocket drops or a peer connection fails (a new join through the API,
// with backoff), re-publishing what it sent and keeping the chat.
import { api } from "../api.js";
import { h, showError } from "../dom.js";
import { openTrack, stopTrack } from "./media.js";
import { Signal } from "./signal.js";
import { Subscriber, Publisher } from "./peers.js";
import { Tiles } from "./tiles.js";
import { Chat } from "./chat.js";
import { People } from "./people.js";

const SELF = "self"; // our tile's key until the server names us
const MAX_BACKOFF_MS = 10000;
const SPEAKING_LEVEL = 0.04; // audioLevel (0..1) above which someone speaks

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  ended: "The call has ended",
  removed: "You were removed from the meeting by the host",
};

// mountCall shows the call in container and returns its cleanup.
// ctx: {meeting, me, relay, isHost, onExit, media: {audio, video, micOff, camOff, cameraId, micId, speakerId}}.
export function mountCall(container, ctx) {
  const identity = ctx.meeting.identity;
  const media = ctx.media || {};
  const local = {
    mic: media.audio || null,
    cam: media.camOff ? null : media.video || null,
    screen: null,
    stream: new MediaStream(), // mic and camera, as sent
    screenStream: null,
    micMuted: !!media.micOff || !media.audio,
    camOff: !!media.camOff || !media.video,
    hand: false,
    cameraId: media.cameraId || "",
    micId: media.micId || "",
  };
  if (local.mic) { local.mic.enabled = !local.micMuted; local.stream.addTrack(local.mic); }
  if (local.cam) local.stream.addTrack(local.cam);

  const conn = {
    signal: null, sub: null, pub: null,
    you: null, // our Participant as the server knows it
    others: new Map(), // participant id → Participant
    tracks: new Map(), // track id → Track
    recv: new Map(), // received MediaStreamTrack → publisher's participant id
  };
  const st = {
    state: "connecting",
    finished: false, // left, removed, or the room closed: no reconnect
    disposed: false,
    attempts: 0,
    endAt: ctx.meeting.end_at || 0,
    closesAt: 0, // from the server's ending
    retryTimer: 0,
    serverClosing: false,
  };
  const levels = new Map(); // participant id → {level, at}

  // ---- the page ----
  const tiles = new Tiles();
  const chat = new Chat({ me: () => conn.you?.id });
  const people = new People({
    onMute: (p) => conn.signal?.send({ type: "mute", participant: p.id }),
    onRemove: (p) => conn.signal?.send({ type: "remove", participant: p.id }),
  });
  const status = h("p", { id: "call-status", role: "status", "data-state": "connecting" }, STATUS_TEXT.connecting);
  const countdown = h("p", { id: "call-countdown", "aria-label": "Time left" });
  const warning = h("p", { id: "call-warning", role: "alert", hidden: true });
  const notice = h("p", { id: "call-notice", role: "status", hidden: true });
  const error = h("p", { id: "call-error", role: "alert", hidden: true });

  const btn = (id, label, text, onclick, pressed = false) =>
    h("button", { id, type: "button", class: "call-control", "aria-label": label, "aria-pressed": String(pressed), onclick }, h("span", { class: "control-text" }, text));
  const micBtn = btn("toggle-mic", "Mute microphone", "Mute", () => act(toggleMic));
  const camBtn = btn("toggle-cam", "Turn camera off", "Camera off", () => act(toggleCam));
  const screenBtn = btn("toggle-screen", "Share screen", "Share screen", () => act(toggleScreen));
  const handBtn = btn("raise-hand", "Raise hand", "Raise hand", () => act(toggleHand));
  const chatBtn = btn("toggle-chat", "Chat", "Chat", () => openPanel("chat"));
  chatBtn.append(chat.badge);
  const peopleBtn = btn("toggle-people", "People", "People", () => openPanel("people"));
  const leaveBtn = h("button", { id: "leave", type: "button", class: "call-control leave danger", "aria-label": "Leave call" }, h("span", { class: "control-text" }, "Leave call"));
  leaveBtn.addEventListener("click", leave);
  if (!navigator.mediaDevices?.getDisplayMedia) { screenBtn.disabled = true; screenBtn.title = "This browser cannot share the screen"; }

  const section = h("section", { id: "call", "aria-label": `Call: ${ctx.meeting.name || "meeting"}` },
    h("header", { class: "call-bar" },
      h("h2", { class: "call-title" }, ctx.meeting.name || "Meeting"),
      status, countdown),
    h("div", { class: "call-messages" }, warning, notice, error),
    h("div", { class: "call-body" }, tiles.el, chat.el, people.el),
    h("div", { class: "call-controls", role: "toolbar", "aria-label": "Call controls" },
      micBtn, camBtn, screenBtn, handBtn, chatBtn, peopleBtn, leaveBtn));
  container.append(section);
  section.addEventListener("keydown", (e) => { if (e.key === "Escape" && (chat.isOpen || !people.el.hidden)) openPanel(null); });

  // Our own tile, with the preview, until the server gives us an id.
  tiles.person(selfParticipant(SELF), { self: true });
  tiles.setLocalVideo(SELF, local.cam);
  tiles.setSinkId(media.speakerId);

  function selfParticipant(id) {
    return {
      id, user: conn.you?.user || String(ctx.me?.id ?? ""), name: conn.you?.name || ctx.me?.username || "You",
      host: !!(conn.you?.host ?? ctx.isHost),
      audio_muted: local.micMuted, video_muted: local.camOff, hand_raised: local.hand,
    };
  }
  const selfId = () => conn.you?.id || SELF;

  function deviceError(what, e) {
    const why = { NotAllowedError: "permission was denied", NotFoundError: `no ${what} was found`, NotReadableError: "another application uses it" }[e.name] || e.message || e.name;
    return new Error(`The ${what} could not be turned on: ${why}.`);
  }

  // act runs a control's action and shows what went wrong.
  function act(f) { f().catch((e) => { console.warn("call", e); showError(error, e.message || String(e)); }); }

  function render() {
    // Labels stay; aria-pressed says the state (true: muted, camera off, sharing, raised).
    micBtn.setAttribute("aria-pressed", String(local.micMuted));
    camBtn.setAttribute("aria-pressed", String(local.camOff));
    screenBtn.setAttribute("aria-pressed", String(!!local.screen));
    handBtn.setAttribute("aria-pressed", String(local.hand));
    chatBtn.setAttribute("aria-pressed", String(chat.isOpen));
    peopleBtn.setAttribute("aria-pressed", String(!people.el.hidden));
    const me = selfParticipant(selfId());
    if (conn.you) conn.you = { ...conn.you, audio_muted: me.audio_muted, video_muted: me.video_muted, hand_raised: me.hand_raised };
    tiles.update(me, { self: true });
    people.render(conn.you ? me : null, conn.others.values(), !!conn.you?.host);
  }

  function setStatus(state, text) {
    st.state = state;
    status.dataset.state = state;
    status.textContent = text || STATUS_TEXT[state];
    section.dataset.state = state;
  }

  function say(text) { notice.textContent = text || ""; notice.hidden = !text; }

  function openPanel(which) {
    chat.setOpen(which === "chat" && !chat.isOpen);
    people.setOpen(which === "people" && people.el.hidden);
    section.dataset.panel = chat.isOpen ? "chat" : !people.el.hidden ? "people" : "";
    render();
    if (chat.isOpen) chat.input.focus();
  }

  // ---- controls ----
  function sendState(s) { conn.signal?.send({ type: "state", ...s }); }

  async function toggleMic() {
    if (!local.mic) {
      local.mic = await openTrack("audio", local.micId).catch((e) => { throw deviceError("microphone", e); });
      if (st.disposed || st.finished) { local.mic.stop(); local.mic = null; return; }
      local.stream.addTrack(local.mic);
      local.micMuted = false;
      await conn.pub?.set("audio", local.mic, local.stream);
    } else {
      local.micMuted = !local.micMuted;
      local.mic.enabled = !local.micMuted;
    }
    if (!local.micMuted) say("");
    sendState({ audio_muted: local.micMuted });
    render();
  }

  async function toggleCam() {
    if (local.camOff) {
      const t = await openTrack("video", local.cameraId).catch((e) => { throw deviceError("camera", e); });
      if (st.disposed || st.finished || !local.camOff) { t.stop(); return; }
      local.cam = t;
      local.camOff = false;
      local.stream.addTrack(t);
      tiles.setLocalVideo(selfId(), t);
      await conn.pub?.set("camera", t, local.stream);
    } else {
      const t = local.cam;
      local.cam = null;
      local.camOff = true;
      if (t) { local.stream.removeTrack(t); t.stop(); } // the camera's light goes off
      tiles.setLocalVideo(selfId(), null);
      await conn.pub?.set("camera", null);
    }
    sendState({ video_muted: local.camOff });
    render();
  }

  async function toggleScreen() {
    if (local.screen) { await stopScreen(); return; }
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
    } catch (e) {
      if (e.name === "NotAllowedError" || e.name === "AbortError") { say("Screen sharing was cancelled."); return; }
      throw new Error(`The screen could not be shared: ${e.message || e.name}`);
    }
    const track = stream.getVideoTracks()[0];
    if (!track || st.disposed || st.finished) { stream.getTracks().forEach((t) => t.stop()); return; }
    for (const t of stream.getAudioTracks()) { t.stop(); stream.removeTrack(t); }
    local.screen = track;
    local.screenStream = stream;
    track.addEventListener("ended", () => { if (local.screen === track) act(stopScreen); }); // the browser's own "Stop sharing"
    tiles.screen(selfParticipant(selfId()), stream, { self: true });
    render();
    await conn.pub?.set("screen", track, stream);
  }

  async function stopScreen() {
    const t = local.screen;
    if (!t) return;
    local.screen = null;
    local.screenStream = null;
    t.stop();
    tiles.unscreen(selfId());
    render();
    await conn.pub?.set("screen", null);
  }

  async function toggleHand() {
    local.hand = !local.hand;
    sendState({ hand_raised: local.hand });
    render();
  }

  function leave() {
    if (!st.finished) finish("ended", "You left the call");
    ctx.onExit?.();
  }

  // ---- connecting ----
  async function connect() {
    st.retryTimer = 0;
    if (st.finished || st.disposed) return;
    setStatus(st.attempts > 0 || conn.you ? "reconnecting" : "connecting");
    let j;
    try {
      j = await api.join(identity);
    } catch (e) {
      if (st.finished || st.disposed) return;
      joinFailed(e);
      return;
    }
    if (st.finished || st.disposed) return;
    showError(error, "");
    say("");
    if (j.end_at) st.endAt = j.end_at;
    const config = { iceServers: j.ice_servers || [] };
    if (ctx.relay) config.iceTransportPolicy = "relay";
    const signal = new Signal(j.signal_url, j.token, {
      onMessage: (m) => (conn.signal === signal ? onMessage(m, config) : undefined),
      onClose: (c) => { if (conn.signal === signal && !c.expected) lost("the signalling connection closed"); },
    });
    conn.signal = signal;
  }

  function joinFailed(e) {
    const s = e.status;
    if (s === 401) return; // the app shows the login page
    if (s === 403 || s === 404 || s === 410) { finish("ended", e.message); return; }
    if (s === 409) {
      const opens = Number(e.data?.opens_at) || 0;
      const wait = opens - Date.now();
      if (opens && wait < 24 * 3600 * 1000) {
        const at = new Date(opens).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        say(`The meeting has not opened yet. You will join automatically when it opens at ${at}.`);
        retry(Math.max(wait + 500, 1000), false);
      } else {
        finish("ended", e.message);
      }
      return;
    }
    if (s === 503 || s === 429) {
      say(s === 503 ? "The meeting's media is starting. Joining in a moment…" : e.message);
      retry(Math.max((e.data?.retryAfter || 1) * 1000, 1000), false);
      return;
    }
    showError(error, e.message);
    retry(0, true);
  }

  // retry connects again after ms, or after the next backoff step.
  function retry(ms, backoff) {
    if (st.finished || st.disposed || st.retryTimer) return;
    let delay = ms;
    if (backoff) { delay = Math.max(ms, Math.min(1000 * 2 ** st.attempts, MAX_BACKOFF_MS)); st.attempts++; }
    st.retryTimer = setTimeout(start, delay);
  }

  // lost tears the connection down and joins again.
  function lost(why) {
    if (st.finished || st.disposed) return;
    console.warn(`call: ${why}; reconnecting`);
    teardown();
    setStatus("reconnecting");
    retry(0, true);
  }

  function teardown() {
    const { signal, sub, pub } = conn;
    conn.signal = conn.sub = conn.pub = null;
    signal?.close();
    sub?.close();
    pub?.close();
    chat.detach();
    for (const id of [...tiles.people.keys()]) if (id !== selfId()) tiles.remove(id);
    for (const id of [...tiles.screens.keys()]) if (id !== selfId()) tiles.unscreen(id);
    conn.others.clear();
    conn.tracks.clear();
    conn.recv.clear();
    tiles.received.clear();
    levels.clear();
    tiles.setSpeaker(null);
  }

  // finish ends the call for good: state "ended" or "removed".
  function finish(state, text) {
    if (st.finished) return;
    st.finished = true;
    clearTimeout(st.retryTimer);
    st.retryTimer = 0;
    const leaving = state === "ended" && text === "You left the call";
    conn.signal?.close({ leave: leaving });
    teardown();
    stopLocal();
    tiles.setLocalVideo(selfId(), null);
    tiles.unscreen(selfId());
    setStatus(state, text);
    for (const b of [micBtn, camBtn, screenBtn, handBtn]) b.disabled = true;
    leaveBtn.querySelector(".control-text").textContent = "Back";
    leaveBtn.setAttribute("aria-label", "Back to the meeting page");
    render();
  }

  function stopLocal() {
    for (const t of [local.mic, local.cam, local.screen]) stopTrack(t);
    local.mic = local.cam = local.screen = null;
    local.screenStream = null;
  }

  // ---- the server's messages ----
  async function onMessage(m, config) {
    switch (m.type) {
      case "joined": return joined(m, config);
      case "offer":
        if (!conn.sub) return;
        try {
          await conn.sub.offer(m.sdp);
        } catch (e) {
          // The server waits for this answer before it offers again: start afresh.
          lost(`the server's offer could not be answered (${e.message})`);
        }
        return;
      case "answer": conn.pub?.answer(m.sdp); return;
      case "participant_joined":
        conn.others.set(m.participant.id, m.participant);
        tiles.person(m.participant);
        render();
        return;
      case "participant_left":
        conn.others.delete(m.participant.id);
        tiles.remove(m.participant.id);
        levels.delete(m.participant.id);
        render();
        return;
      case "participant_updated": return updated(m.participant);
      case "muted":
        local.micMuted = true;
        if (local.mic) local.mic.enabled = false;
        say(m.by?.name ? `The host (${m.by.name}) muted you.` : "The host muted you.");
        render();
        return;
      case "track_published": conn.tracks.set(m.track.id, m.track); return;
      case "track_unpublished":
        conn.tracks.delete(m.track.id);
        tiles.removeTrack(m.track.participant, m.track.id, m.track.source);
        return;
      case "ending":
        st.closesAt = Date.now() + Math.max(0, Number(m.remaining_ms) || 0);
        tick();
        return;
      case "closing":
        if (m.reason === "server shutting down") { st.serverClosing = true; say("The server is restarting. Reconnecting…"); return; }
        finish("ended", "The meeting has ended");
        return;
      case "congestion": return congestion(m.tracks || []);
      case "error": return serverError(m);
      default: return; // newer messages this client does not know
    }
  }

  // The server pauses video this browser cannot keep up with, and resumes it
  // at a keyframe; say so while any is paused.
  const paused = new Set();
  function congestion(list) {
    const had = paused.size;
    for (const t of list) {
      if (t.state === "paused") paused.add(t.track);
      else paused.delete(t.track);
    }
    if (paused.size) say(`Your connection cannot keep up: ${paused.size} video ${paused.size === 1 ? "stream is" : "streams are"} paused for now.`);
    else if (had) say("");
  }

  function joined(m, config) {
    paused.clear();
    const oldId = selfId();
    conn.you = m.you;
    tiles.rename(oldId, m.you);
    chat.mine.add(m.you.id);
    conn.others = new Map((m.participants || []).map((p) => [p.id, p]));
    conn.tracks = new Map((m.tracks || []).map((t) => [t.id, t]));
    for (const p of conn.others.values()) tiles.person(p);
    const send = (x) => conn.signal?.send(x);
    conn.sub = new Subscriber(config, send, {
      track: onTrack,
      datachannel: (e) => { if (e.channel.label === "chat") chat.attach(e.channel); },
      failed: () => lost("the subscribe connection failed"),
    });
    conn.pub = new Publisher(config, send, {
      failed: () => lost("the publish connection failed"),
      error: (text) => showError(error, text),
    });
    // Our state as it was (the server starts a new participant afresh).
    if (local.micMuted || local.camOff || local.hand) {
      sendState({ audio_muted: local.micMuted, video_muted: local.camOff, hand_raised: local.hand });
    }
    const pub = conn.pub;
    const publish = async () => {
      if (local.mic) await pub.set("audio", local.mic, local.stream);
      if (local.cam) await pub.set("camera", local.cam, local.stream);
      if (local.screen) await pub.set("screen", local.screen, local.screenStream);
    };
    publish().catch((e) => console.warn("publish", e));
    st.attempts = 0;
    st.serverClosing = false;
    setStatus("connected");
    render();
  }

  function updated(p) {
    if (conn.you && p.id === conn.you.id) {
      // Our own state is ours (a host mute comes as "muted"): echoes of
      // our state messages may be older than our last choice.
      conn.you = p;
      render();
      return;
    }
    conn.others.set(p.id, p);
    tiles.update(p);
    render();
  }

  function serverError(m) {
    switch (m.code) {
      case "removed": finish("removed", STATUS_TEXT.removed); return;
      case "negotiation_failed": if (!conn.pub?.refused(m.message)) console.warn("signal:", m.code, m.message); return;
      case "bad_chat": chat.serverError(m.message); return;
      case "forbidden": showError(error, m.message); return;
      case "room_full": finish("ended", "The call is full."); return;
      case "closing": st.serverClosing = true; return; // the close follows: join again
      default: console.warn("signal:", m.code, m.message); // unauthorized: the close follows and we join again
    }
  }

  function onTrack(e) {
    const mid = e.transceiver?.mid;
    const id = (mid != null && conn.sub?.msids.get(mid)) || e.track.id;
    const t = conn.tracks.get(id);
    const pid = t?.participant || e.streams[0]?.id;
    if (!pid || pid === conn.you?.id) return;
    const source = t?.source || (e.track.kind === "audio" ? "audio" : "camera");
    const p = conn.others.get(pid) || { id: pid, user: "", name: "" };
    conn.recv.set(e.track, pid);
    tiles.addTrack(p, e.track, source, id);
    tiles.setSinkId(tiles.sinkId);
  }

  // ---- the clock and the active speaker ----
  function fmt(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return hh > 0 ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
  }

  function tick() {
    const now = Date.now();
    if (st.endAt) {
      const left = st.endAt - now;
      countdown.textContent = left > 0 ? `Ends in ${fmt(left)}` : "Time is up";
      countdown.dataset.remainingMs = String(Math.max(0, left));
    }
    if (st.closesAt && !st.finished) {
      warning.hidden = false;
      warning.textContent = `The meeting is ending: the call closes in ${fmt(st.closesAt - now)}.`;
    } else if (st.finished) {
      warning.hidden = true;
    }
  }

  async function listen() {
    const now = Date.now();
    const sub = conn.sub;
    if (sub) {
      // RTCRtpReceiver.getSynchronizationSources() gives audioLevel when the
      // RTP carries the audio level header extension; else the receiver's
      // inbound-rtp stats (the level of the decoded audio) do.
      const noLevel = new Map(); // track id → participant id
      for (const r of sub.pc.getReceivers()) {
        if (r.track?.kind !== "audio") continue;
        const pid = conn.recv.get(r.track);
        if (!pid || conn.others.get(pid)?.audio_muted) continue;
        const sources = r.getSynchronizationSources ? r.getSynchronizationSources() : [];
        if (!sources.some((x) => typeof x.audioLevel === "number")) { noLevel.set(r.track.id, pid); continue; }
        const level = Math.max(0, ...sources.map((x) => x.audioLevel || 0));
        if (level > SPEAKING_LEVEL) levels.set(pid, { level, at: now });
      }
      if (noLevel.size > 0) {
        (await sub.pc.getStats()).forEach((x) => {
          const pid = x.type === "inbound-rtp" && x.kind === "audio" && noLevel.get(x.trackIdentifier);
          if (pid && (x.audioLevel || 0) > SPEAKING_LEVEL) levels.set(pid, { level: x.audioLevel, at: now });
        });
      }
    }
    const pc = conn.pub?.pc;
    if (pc && local.mic && !local.micMuted) {
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type === "media-source" && s.kind === "audio" && (s.audioLevel || 0) > SPEAKING_LEVEL) levels.set(selfId(), { level: s.audioLevel, at: now });
      });
    }
    let best = null, bestLevel = 0;
    for (const [pid, v] of levels) {
      if (now - v.at > 1200) { levels.delete(pid); continue; }
      if (v.level > bestLevel) { best = pid; bestLevel = v.level; }
    }
    // Keep the current speaker while they still speak, so the mark does not flicker.
    if (tiles.speaking && levels.has(tiles.speaking)) return;
    tiles.setSpeaker(best);
  }

  const clock = setInterval(tick, 1000);
  let listening = false;
  const speakers = setInterval(() => {
    if (listening || st.finished) return;
    listening = true;
    listen().catch((e) => console.warn("speaker", e)).finally(() => { listening = false; });
  }, 400);

  // start connects, reporting what nothing else caught (a bad signal_url, say).
  function start() {
    connect().catch((e) => { console.warn("call: connect", e); showError(error, e.message || String(e)); lost("connecting failed"); });
  }

  tick();
  render();
  start();

  return function cleanup() {
    if (st.disposed) return;
    if (!st.finished) {
      st.finished = true;
      conn.signal?.close({ leave: true });
      teardown();
    }
    st.disposed = true;
    clearTimeout(st.retryTimer);
    clearInterval(clock);
    clearInterval(speakers);
    stopLocal();
    tiles.clear();
    section.remove();
  };
}
