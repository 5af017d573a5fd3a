// Package vp8 reads and writes the few parts of VP8 RTP payloads (RFC 7741)
// that forwarding and synthetic media need.
package vp8

// IsKeyframeStart reports whether an RTP payload of VP8 (RFC 7741) is the
// first packet of a keyframe: start of partition 0 and the frame tag's P bit 0.
func IsKeyframeStart(p []byte) bool {
	if len(p) < 1 {
		return false
	}
	d := p[0]
	i := 1
	if d&0x80 != 0 { // X: extension byte follows
		if len(p) < 2 {
			return false
		}
		x := p[1]
		i = 2
		if x&0x80 != 0 { // I: picture id
			if len(p) <= i {
				return false
			}
			if p[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if x&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if x&0x30 != 0 { // T or K: TID/KEYIDX byte
			i++
		}
	}
	if d&0x10 == 0 || d&0x0f != 0 { // S must be set, PID 0
		return false
	}
	if len(p) <= i {
		return false
	}
	return p[i]&0x01 == 0
}

// KeyframeHeader is the start of a VP8 keyframe: the 3-byte frame tag
// (keyframe, version 0, shown, first partition size) and the start code with a
// 16x16 size; Payload descriptors are not included.
func KeyframeHeader(firstPartSize int) []byte {
	tag := uint32(firstPartSize)<<5 | 1<<4 // P=0 keyframe, version 0, show_frame=1
	return []byte{byte(tag), byte(tag >> 8), byte(tag >> 16), 0x9d, 0x01, 0x2a, 16, 0, 16, 0}
}

// InterframeHeader is the 3-byte frame tag of a VP8 interframe.
func InterframeHeader(firstPartSize int) []byte {
	tag := uint32(firstPartSize)<<5 | 1<<4 | 1 // P=1
	return []byte{byte(tag), byte(tag >> 8), byte(tag >> 16)}
}
