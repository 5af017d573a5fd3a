package client

import "testing"

func TestOriginOf(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ws://127.0.0.1:7880/ws", "http://127.0.0.1:7880"},
		{"wss://meet.example.org/sfu/ws?x=1", "https://meet.example.org"},
		{"wss://meet.example.org:8443/ws", "https://meet.example.org:8443"},
		{"ws://[::1]:7880/ws", "http://[::1]:7880"},
	} {
		if got, err := OriginOf(tc.in); err != nil || got != tc.want {
			t.Errorf("OriginOf(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := OriginOf("ftp://x/ws"); err == nil {
		t.Error("OriginOf accepted ftp")
	}
}
