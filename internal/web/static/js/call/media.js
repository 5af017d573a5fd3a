// Local devices: opening the microphone and camera, naming their failures,
// listing the devices to choose from, and routing audio to a speaker.

// canChooseSpeaker is true where a media element's output can be chosen.
export const canChooseSpeaker = typeof HTMLMediaElement !== "undefined" && "setSinkId" in HTMLMediaElement.prototype;

const videoConstraints = (deviceId) => ({
  width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 },
  ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
});
const audioConstraints = (deviceId) => ({
  echoCancellation: true, noiseSuppression: true, autoGainControl: true,
  ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
});

// openTrack opens one device of kind "audio" or "video" (deviceId may be
// empty: the default) and returns its track. It throws the browser's error.
export async function openTrack(kind, deviceId) {
  if (!navigator.mediaDevices?.getUserMedia) throw Object.assign(new Error("no media devices"), { name: "NotSupportedError" });
  const c = kind === "audio" ? { audio: audioConstraints(deviceId) } : { video: videoConstraints(deviceId) };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(c);
  } catch (e) {
    // A device that went away: fall back to the default one.
    if (deviceId && (e.name === "OverconstrainedError" || e.name === "NotFoundError")) return openTrack(kind, "");
    throw e;
  }
  return kind === "audio" ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
}

// openBoth opens the microphone and the camera, each on its own so that one
// missing or refused device does not cost the other. It returns
// {audio, video, errors: {audio, video}}; a track is null when it failed.
export async function openBoth({ micId = "", cameraId = "", audio = true, video = true } = {}) {
  const [a, v] = await Promise.allSettled([
    audio ? openTrack("audio", micId) : Promise.resolve(null),
    video ? openTrack("video", cameraId) : Promise.resolve(null),
  ]);
  return {
    audio: a.status === "fulfilled" ? a.value : null,
    video: v.status === "fulfilled" ? v.value : null,
    errors: { audio: a.status === "rejected" ? a.reason : null, video: v.status === "rejected" ? v.reason : null },
  };
}

// explain turns the failures of openBoth into one sentence for a person, or "".
export function explain(errors, { wantAudio = true, wantVideo = true } = {}) {
  const failed = [];
  if (wantAudio && errors.audio) failed.push(["microphone", errors.audio]);
  if (wantVideo && errors.video) failed.push(["camera", errors.video]);
  if (failed.length === 0) return "";
  const what = failed.map(([n]) => n).join(" and ");
  const names = new Set(failed.map(([, e]) => e.name));
  const tail = failed.length === 2 ? " You can still join to watch and listen." : " You can still join.";
  if (names.has("NotAllowedError") || names.has("SecurityError")) {
    return `Permission to use the ${what} was denied. Allow it in the browser's site settings and reload the page to be seen and heard.${tail}`;
  }
  if (names.has("NotFoundError") || names.has("OverconstrainedError")) return `No ${what} found.${tail}`;
  if (names.has("NotReadableError") || names.has("AbortError")) return `The ${what} is in use by another application or could not be started.${tail}`;
  if (names.has("NotSupportedError")) return `This browser cannot use a ${what} here (the page needs a secure connection).${tail}`;
  return `The ${what} could not be opened (${failed[0][1].message || failed[0][1].name}).${tail}`;
}

// listDevices returns {audioinput: [], videoinput: [], audiooutput: []} of MediaDeviceInfo.
export async function listDevices() {
  const out = { audioinput: [], videoinput: [], audiooutput: [] };
  if (!navigator.mediaDevices?.enumerateDevices) return out;
  try {
    for (const d of await navigator.mediaDevices.enumerateDevices()) {
      if (out[d.kind] && d.deviceId) out[d.kind].push(d);
    }
  } catch (e) {
    console.warn("enumerateDevices", e);
  }
  return out;
}

// setSink routes el's audio to the speaker sinkId ("" = the default).
export function setSink(el, sinkId) {
  if (!canChooseSpeaker || el.sinkId === (sinkId || "")) return;
  el.setSinkId(sinkId || "").catch((e) => console.warn("setSinkId", e));
}

// stopTrack stops a track if there is one.
export function stopTrack(t) { if (t) t.stop(); }
