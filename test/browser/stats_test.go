package browser

import "time"

// mediaStats sums what a page receives over all its open peer connections.
type mediaStats struct {
	FramesDecoded   int64 `json:"framesDecoded"`
	AudioPackets    int64 `json:"audioPackets"`
	VideoInbound    int   `json:"videoInbound"`
	PeerConnections int   `json:"peerConnections"`
	// SelectedLocal and SelectedRemote are the candidate types of each
	// open transport's selected pair ("host", "relay", …).
	SelectedLocal  []string `json:"selectedLocal"`
	SelectedRemote []string `json:"selectedRemote"`
}

const statsScript = `(async () => {
  const out = {framesDecoded: 0, audioPackets: 0, videoInbound: 0, peerConnections: 0, selectedLocal: [], selectedRemote: []};
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === "closed") continue;
    out.peerConnections++;
    const stats = await pc.getStats();
    stats.forEach(s => {
      if (s.type === "inbound-rtp" && s.kind === "video") { out.framesDecoded += s.framesDecoded || 0; out.videoInbound++; }
      if (s.type === "inbound-rtp" && s.kind === "audio") out.audioPackets += s.packetsReceived || 0;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = stats.get(s.selectedCandidatePairId);
        const l = pair && stats.get(pair.localCandidateId), r = pair && stats.get(pair.remoteCandidateId);
        if (l) out.selectedLocal.push(l.candidateType);
        if (r) out.selectedRemote.push(r.candidateType);
      }
    });
  }
  return out;
})()`

func (p *tab) stats() mediaStats {
	p.t.Helper()
	return eval[mediaStats](p, statsScript)
}

// mediaFlows waits until the page decodes video frames and receives audio
// packets, and then until both counts grow further: media is flowing now,
// not only once. It returns the last figures.
func (p *tab) mediaFlows() mediaStats {
	p.t.Helper()
	first := p.waitStats("video frames decoded and audio received", func(s mediaStats) bool {
		return s.FramesDecoded > 0 && s.AudioPackets > 0
	})
	return p.waitStats("video frames and audio packets still growing", func(s mediaStats) bool {
		return s.FramesDecoded > first.FramesDecoded+5 && s.AudioPackets > first.AudioPackets+10
	})
}

// waitStats polls the page's stats until ok holds.
func (p *tab) waitStats(what string, ok func(mediaStats) bool) mediaStats {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := p.stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s: not after %s; stats %+v", p.name, what, timeout, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
