// The pre-join: a camera preview, the choice of camera, microphone and
// speaker, microphone and camera off before joining, and a clear message when
// a device is refused or missing (joining to watch and listen still works).
// #join-call replaces it with the call (call.js) in the same container.
import { h, replace, showError } from "../dom.js";
import { openTrack, openBoth, explain, listDevices, canChooseSpeaker, stopTrack } from "./media.js";
import { mountCall } from "./call.js";

// mountPrejoin shows the pre-join in container and returns its cleanup,
// which also ends a call started from it. ctx: {meeting, me, relay, isHost, onExit}.
export function mountPrejoin(container, ctx) {
  const st = {
    audio: null, video: null, // the open tracks (video is null while the camera is off)
    micOff: false, camOff: false,
    micId: "", cameraId: "", speakerId: "",
    errors: { audio: null, video: null },
    disposed: false,
  };
  let callCleanup = null;

  const preview = h("video", { id: "preview", autoplay: true, playsinline: true, muted: true, "aria-label": "Your camera" });
  preview.muted = true;
  const previewOff = h("p", { class: "preview-off", "aria-hidden": "true" }, "Starting your camera…");
  const cameraSelect = h("select", { id: "camera-select", onchange: () => run(switchCamera) });
  const micSelect = h("select", { id: "mic-select", onchange: () => run(switchMic) });
  const speakerSelect = h("select", { id: "speaker-select", onchange: () => { st.speakerId = speakerSelect.value; } });
  const speakerField = h("label", { class: "field", hidden: !canChooseSpeaker }, "Speaker", speakerSelect);
  const micBtn = h("button", { id: "prejoin-mic", type: "button", "aria-pressed": "false", onclick: () => run(toggleMic) }, "Mute microphone");
  const camBtn = h("button", { id: "prejoin-cam", type: "button", "aria-pressed": "false", onclick: () => run(toggleCam) }, "Turn camera off");
  const message = h("p", { id: "prejoin-message", role: "alert", hidden: true });
  // Join waits for the devices' answer (or 10 s of a pending permission prompt).
  const joinBtn = h("button", { id: "join-call", type: "button", class: "primary", disabled: true, onclick: join }, "Join now");
  const joinAnyway = setTimeout(() => { joinBtn.disabled = false; }, 10000);
  const cancelBtn = h("button", { id: "prejoin-cancel", type: "button", onclick: () => { cleanup(); ctx.onExit?.(); } }, "Cancel");

  const section = h("section", { id: "prejoin", "aria-labelledby": "prejoin-title" },
    h("h2", { id: "prejoin-title" }, "Ready to join?"),
    h("div", { class: "prejoin-body" },
      h("div", { class: "preview-box" }, preview, previewOff),
      h("div", { class: "prejoin-settings" },
        h("label", { class: "field" }, "Camera", cameraSelect),
        h("label", { class: "field" }, "Microphone", micSelect),
        speakerField,
        h("div", { class: "prejoin-toggles" }, micBtn, camBtn),
        message,
        h("div", { class: "prejoin-actions" }, joinBtn, cancelBtn))));
  container.append(section);

  // run calls an async step and reports what goes wrong instead of leaving a rejected promise.
  function run(f) { f().catch((e) => { console.warn("prejoin", e); showError(message, e.message || String(e)); }); }

  function render() {
    preview.srcObject = st.video ? new MediaStream([st.video]) : null;
    previewOff.hidden = !!st.video;
    micBtn.setAttribute("aria-pressed", String(st.micOff));
    camBtn.setAttribute("aria-pressed", String(st.camOff));
    micBtn.disabled = !st.audio;
    camBtn.disabled = !st.video && !!st.errors.video && !st.camOff;
    let text = explain(st.errors);
    if (!text && !st.audio && !st.video) text = "You will join without camera and microphone, to watch and listen.";
    showError(message, text);
  }

  function fill(select, devices, current, none, noun) {
    const opts = devices.map((d, i) => h("option", { value: d.deviceId }, d.label || `${noun} ${i + 1}`));
    if (opts.length === 0) opts.push(h("option", { value: "" }, none));
    replace(select, opts);
    select.disabled = devices.length === 0;
    if (current && devices.some((d) => d.deviceId === current)) select.value = current;
  }

  async function refreshDevices() {
    const d = await listDevices();
    if (st.disposed) return;
    st.cameraId = st.video?.getSettings().deviceId || st.cameraId;
    st.micId = st.audio?.getSettings().deviceId || st.micId;
    fill(cameraSelect, d.videoinput, st.cameraId, "No camera", "Camera");
    fill(micSelect, d.audioinput, st.micId, "No microphone", "Microphone");
    fill(speakerSelect, d.audiooutput, st.speakerId, "Default speaker", "Speaker");
    speakerField.hidden = !canChooseSpeaker || d.audiooutput.length === 0;
  }

  async function start() {
    const r = await openBoth();
    clearTimeout(joinAnyway);
    joinBtn.disabled = false;
    previewOff.textContent = "Camera off";
    if (st.disposed || callCleanup) { stopTrack(r.audio); stopTrack(r.video); return; }
    st.audio = r.audio; st.video = r.video; st.errors = r.errors;
    render();
    await refreshDevices();
  }

  async function switchCamera() {
    st.cameraId = cameraSelect.value;
    if (st.camOff) return;
    const t = await openTrack("video", st.cameraId);
    if (st.disposed || callCleanup) { t.stop(); return; }
    stopTrack(st.video); st.video = t; st.errors.video = null;
    render();
  }

  async function switchMic() {
    st.micId = micSelect.value;
    const t = await openTrack("audio", st.micId);
    if (st.disposed || callCleanup) { t.stop(); return; }
    t.enabled = !st.micOff;
    stopTrack(st.audio); st.audio = t; st.errors.audio = null;
    render();
  }

  async function toggleMic() {
    st.micOff = !st.micOff;
    if (st.audio) st.audio.enabled = !st.micOff;
    render();
  }

  async function toggleCam() {
    st.camOff = !st.camOff;
    if (st.camOff) { stopTrack(st.video); st.video = null; render(); return; }
    render();
    try {
      const t = await openTrack("video", st.cameraId);
      if (st.disposed || st.camOff || callCleanup) { t.stop(); return; }
      st.video = t; st.errors.video = null;
    } catch (e) {
      st.camOff = true; st.errors.video = e;
    }
    render();
  }

  function join() {
    if (st.disposed || callCleanup) return;
    const media = {
      audio: st.audio, video: st.video, micOff: st.micOff, camOff: st.camOff || !st.video,
      micId: st.micId, cameraId: st.cameraId, speakerId: canChooseSpeaker ? st.speakerId : "",
    };
    // The call owns the tracks from now on.
    st.audio = null; st.video = null;
    preview.srcObject = null;
    section.remove();
    callCleanup = mountCall(container, { ...ctx, media, onExit: () => { cleanup(); ctx.onExit?.(); } });
  }

  function cleanup() {
    if (st.disposed) return;
    st.disposed = true;
    clearTimeout(joinAnyway);
    stopTrack(st.audio); stopTrack(st.video);
    st.audio = null; st.video = null;
    preview.srcObject = null;
    section.remove();
    if (callCleanup) { const c = callCleanup; callCleanup = null; c(); }
    navigator.mediaDevices?.removeEventListener?.("devicechange", onDeviceChange);
  }

  function onDeviceChange() { if (!callCleanup) refreshDevices().catch((e) => console.warn("devices", e)); }
  navigator.mediaDevices?.addEventListener?.("devicechange", onDeviceChange);

  render();
  message.hidden = true; // nothing to say until the devices answered
  run(async () => { try { await start(); } finally { clearTimeout(joinAnyway); joinBtn.disabled = false; } });
  return cleanup;
}
