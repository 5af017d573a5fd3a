package sync

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/meeting"
	"meeting.dev/meeting/internal/store"
)

var dnsLabel = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

func TestResourceName(t *testing.T) {
	long := strings.Repeat("a", 48)
	tests := []struct {
		identity, want string
	}{
		{"6f1c2a4e-1b2c-4d3e-8f90-1234567890ab", "m-6f1c2a4e-1b2c-4d3e-8f90-1234567890ab"},
		{"weekly", "m-weekly"},
		{long, "m-" + long},
		{long + "b", ""},               // 49 characters: hashed
		{"team.sync_1", ""},            // '.' and '_' are not in a DNS label
		{"ends-with-", ""},             // cannot end with '-'
		{"...", ""},                    // nothing readable left
		{strings.Repeat("x.", 32), ""}, // 64 characters
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := ResourceName(tt.identity)
		if tt.want != "" && got != tt.want {
			t.Errorf("ResourceName(%q) = %q, want %q", tt.identity, got, tt.want)
		}
		if !dnsLabel.MatchString(got) || len(got) > 50 {
			t.Errorf("ResourceName(%q) = %q: not a DNS label of at most 50 characters", tt.identity, got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("ResourceName(%q) = ResourceName(%q) = %q", tt.identity, prev, got)
		}
		seen[got] = tt.identity
		if got != ResourceName(tt.identity) {
			t.Errorf("ResourceName(%q) is not stable", tt.identity)
		}
	}
	if got := ResourceName("team.sync_1"); !strings.HasPrefix(got, "m-team-sync-1-") || len(got) != len("m-team-sync-1-")+10 {
		t.Errorf("ResourceName(team.sync_1) = %q, want m-team-sync-1-<10 hex>", got)
	}
}

func TestToSpec(t *testing.T) {
	begin := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.FixedZone("x", 3600))
	m := meeting.Meeting{Identity: "abc", Name: "Weekly", BeginAt: begin, EndAt: begin.Add(time.Hour), MaxParticipants: 7}
	got := ToSpec(m, "alice", []string{"carol", "bob", "alice", "Bob", ""})
	want := rtcv1alpha1.MeetingSpec{
		Identity: "abc", Title: "Weekly",
		BeginAt: metav1.NewTime(begin.UTC()), EndAt: metav1.NewTime(begin.Add(time.Hour).UTC()),
		Creator: "alice", Participants: []string{"bob", "carol"}, MaxParticipants: 7,
	}
	if got.Identity != want.Identity || got.Title != want.Title || !got.BeginAt.Equal(&want.BeginAt) || !got.EndAt.Equal(&want.EndAt) ||
		got.Creator != want.Creator || !slices.Equal(got.Participants, want.Participants) || got.MaxParticipants != 7 {
		t.Errorf("ToSpec = %+v, want %+v", got, want)
	}
	if got.Media.TURN != nil {
		t.Error("ToSpec set spec.media, which the API never owns")
	}
	m.MaxParticipants = 0
	if got := ToSpec(m, "alice", nil); got.MaxParticipants != DefaultMaxParticipants || got.Participants != nil {
		t.Errorf("no limit, no participants: %+v", got)
	}
}

func TestSpecDiffers(t *testing.T) {
	begin := time.Date(2030, 1, 2, 3, 4, 5, 678e6, time.UTC)
	row := store.SyncedMeeting{
		Meeting: meeting.Meeting{Identity: "abc", Name: "Weekly", BeginAt: begin, EndAt: begin.Add(time.Hour), MaxParticipants: 50},
		Creator: "alice", Participants: []string{"bob", "carol"},
	}
	base := func() *rtcv1alpha1.Meeting {
		return &rtcv1alpha1.Meeting{Spec: rtcv1alpha1.MeetingSpec{
			Identity: "abc", Title: "Weekly",
			// A resource keeps seconds: the row's milliseconds are no difference.
			BeginAt: metav1.NewTime(begin.Truncate(time.Second)), EndAt: metav1.NewTime(begin.Add(time.Hour).Truncate(time.Second)),
			Creator: "Alice", Participants: []string{"Carol", "bob", "alice"},
		}}
	}
	tests := []struct {
		name   string
		change func(m *rtcv1alpha1.Meeting)
		differ bool
	}{
		{"same (case, order, creator listed, default max)", func(*rtcv1alpha1.Meeting) {}, false},
		{"title", func(m *rtcv1alpha1.Meeting) { m.Spec.Title = "Other" }, true},
		{"begin", func(m *rtcv1alpha1.Meeting) { m.Spec.BeginAt = metav1.NewTime(begin.Add(time.Second)) }, true},
		{"end", func(m *rtcv1alpha1.Meeting) { m.Spec.EndAt = metav1.NewTime(begin.Add(2 * time.Hour)) }, true},
		{"creator", func(m *rtcv1alpha1.Meeting) { m.Spec.Creator = "bob" }, true},
		{"participant added", func(m *rtcv1alpha1.Meeting) { m.Spec.Participants = append(m.Spec.Participants, "dave") }, true},
		{"participant removed", func(m *rtcv1alpha1.Meeting) { m.Spec.Participants = []string{"bob"} }, true},
		{"max", func(m *rtcv1alpha1.Meeting) { m.Spec.MaxParticipants = 10 }, true},
		{"media is not ours", func(m *rtcv1alpha1.Meeting) { f := false; m.Spec.Media.TURN = &f }, false},
	}
	for _, tt := range tests {
		m := base()
		tt.change(m)
		if got := SpecDiffers(row, m); got != tt.differ {
			t.Errorf("%s: SpecDiffers = %v, want %v", tt.name, got, tt.differ)
		}
	}
}

func TestClusterRow(t *testing.T) {
	m := &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Name: "m-abc", UID: "u1", ResourceVersion: "7"},
		Spec:       rtcv1alpha1.MeetingSpec{Identity: "ABC"},
		Status: rtcv1alpha1.MeetingStatus{
			Phase: rtcv1alpha1.PhaseRunning, SignalURL: "ws://sfu/ws", TURNURIs: []string{"turn:a:3478?transport=udp"},
			Conditions: []metav1.Condition{{Type: rtcv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Available", Message: "up"}},
		},
	}
	c := clusterRow(m, time.Unix(100, 0))
	if c.Identity != "abc" || c.Name != "m-abc" || c.UID != "u1" || c.Phase != "Running" || c.SignalURL != "ws://sfu/ws" ||
		c.TURNURIs != `["turn:a:3478?transport=udp"]` || !c.Ready || c.ReadyReason != "Available" || c.ReadyMessage != "up" {
		t.Errorf("clusterRow = %+v", c)
	}
	c2 := c
	c2.ResourceVersion, c2.SyncedAt = "8", time.Unix(200, 0)
	if !sameStatus(c, c2) {
		t.Error("resourceVersion and SyncedAt alone made a difference")
	}
	c2.Phase = "Ending"
	if sameStatus(c, c2) {
		t.Error("a phase change made no difference")
	}
}
