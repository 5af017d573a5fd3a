package signal

import (
	"reflect"
	"testing"
)

func TestCongestionRoundTrip(t *testing.T) {
	m := Congestion{Tracks: []CongestedTrack{{Track: "p1/cam", State: "paused", Reason: "stalled", RetryMS: 2000}, {Track: "p2/cam", State: "resumed"}}}
	b, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"type":"congestion","tracks":[{"track":"p1/cam","state":"paused","reason":"stalled","retry_ms":2000},{"track":"p2/cam","state":"resumed"}]}`
	if string(b) != want {
		t.Fatalf("encoded %s\nwant    %s", b, want)
	}
	got, err := Decode(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded %#v, %v", got, err)
	}
}
