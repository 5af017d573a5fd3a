package vp8

import "testing"

func TestIsKeyframeStart(t *testing.T) {
	key := append([]byte{0x10}, KeyframeHeader(100)...)
	inter := append([]byte{0x10}, InterframeHeader(100)...)
	cont := append([]byte{0x00}, KeyframeHeader(100)...)
	ext := append([]byte{0x90, 0x80, 0x81, 0x02}, KeyframeHeader(100)...) // X, I with 15-bit picture id
	for _, tc := range []struct {
		name string
		p    []byte
		want bool
	}{
		{"keyframe start", key, true},
		{"interframe", inter, false},
		{"continuation", cont, false},
		{"extended keyframe", ext, true},
		{"partition 1", append([]byte{0x11}, KeyframeHeader(1)...), false},
		{"empty", nil, false},
		{"descriptor only", []byte{0x10}, false},
		{"truncated extension", []byte{0x90}, false},
	} {
		if got := IsKeyframeStart(tc.p); got != tc.want {
			t.Errorf("%s: IsKeyframeStart = %v, want %v", tc.name, got, tc.want)
		}
	}
	if KeyframeHeader(0)[3] != 0x9d {
		t.Fatal("start code missing")
	}
}
