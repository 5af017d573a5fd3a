package controllers

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/schedule"
)

// availableDep is a Deployment the deployment controller reports available.
func availableDep(name string) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Generation: 1},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 1, AvailableReplicas: 1,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}}},
	}
}

// stuckDep is a Deployment that exceeded its progress deadline.
func stuckDep(name string) *appsv1.Deployment {
	d := availableDep(name)
	d.Status.AvailableReplicas = 0
	d.Status.Conditions = []appsv1.DeploymentCondition{{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
		Reason: "ProgressDeadlineExceeded", Message: "timed out progressing"}}
	return d
}

// cond is a condition as it is written, for the status a test starts from.
func cond(typ string, status metav1.ConditionStatus, reason string, at time.Time) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: "before", LastTransitionTime: metav1.NewTime(at)}
}

// wantCond is a condition's status and reason, written "True/Available".
type wantCond = string

func TestDesiredStatus(t *testing.T) {
	begin := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	end := begin.Add(time.Hour)
	lead, grace := time.Minute, 2*time.Minute
	earlier := begin.Add(-time.Hour) // when conditions of the status read last changed

	scheduled := schedule.Plan{Phase: schedule.Scheduled, Next: begin.Add(-lead), StartAt: begin.Add(-lead)}
	starting := schedule.Plan{Phase: schedule.Starting, Next: end, StartAt: begin.Add(-lead)}
	ending := schedule.Plan{Phase: schedule.Ending, Next: end.Add(grace), StartAt: begin.Add(-lead)}
	ended := schedule.Plan{Phase: schedule.Ended, StartAt: begin.Add(-lead)}

	cluster := DefaultConfig()
	nodePort := DefaultConfig()
	nodePort.ServiceType, nodePort.PublicAddress = corev1.ServiceTypeNodePort, "192.0.2.7"
	lb := DefaultConfig()
	lb.ServiceType = corev1.ServiceTypeLoadBalancer

	sfuSvc, turnSvc := svcWith("m-sfu", "", nil, ""), svcWith("m-turn", "", nil, "")
	up := children{SFUDeployment: availableDep("m-sfu"), SFUService: sfuSvc, TURNDeployment: availableDep("m-turn"), TURNService: turnSvc}
	signalURL := "ws://m-sfu.ns.svc:7880/ws"
	turnURIs := []string{"turn:m-turn.ns.svc:3478?transport=udp", "turn:m-turn.ns.svc:3478?transport=tcp"}

	// running is the status of a meeting whose media came up at begin.
	running := func(m *rtcv1alpha1.Meeting) {
		m.Finalizers = []string{rtcv1alpha1.MediaFinalizer}
		m.Status = rtcv1alpha1.MeetingStatus{
			Phase:     rtcv1alpha1.PhaseRunning,
			SignalURL: signalURL, TURNURIs: turnURIs,
			StartedAt: &metav1.Time{Time: begin},
			Conditions: []metav1.Condition{
				cond(rtcv1alpha1.ConditionReady, metav1.ConditionTrue, ReasonAvailable, earlier),
				cond(rtcv1alpha1.ConditionSFUAvailable, metav1.ConditionTrue, ReasonAvailable, earlier),
				cond(rtcv1alpha1.ConditionTURNAvailable, metav1.ConditionTrue, ReasonAvailable, earlier),
			},
		}
	}
	noTURN := func(m *rtcv1alpha1.Meeting) { off := false; m.Spec.Media.TURN = &off }

	tests := []struct {
		name    string
		cfg     Config
		meeting func(*rtcv1alpha1.Meeting) // changes testMeeting(); nil keeps it
		kids    children
		plan    schedule.Plan
		planErr error
		now     time.Time

		wantPhase rtcv1alpha1.Phase
		// wantConds maps each condition type to "Status/Reason".
		wantConds map[string]wantCond
		// wantEndpoints: the signalling URL and TURN URIs are set, or both empty.
		wantEndpoints bool
		check         func(t *testing.T, st rtcv1alpha1.MeetingStatus)
	}{
		{
			name: "scheduled", plan: scheduled, now: begin.Add(-time.Hour),
			wantPhase: rtcv1alpha1.PhaseScheduled,
			wantConds: map[string]wantCond{"Ready": "False/NotStarted", "SFUAvailable": "False/NotStarted", "TURNAvailable": "False/NotStarted"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "2026-11-24T09:59:00Z") {
					t.Errorf("Ready message %q does not say when the media comes up", c.Message)
				}
			},
		},
		{
			name: "postponed while running: back to scheduled, endpoints cleared", plan: scheduled, now: begin,
			meeting:   func(m *rtcv1alpha1.Meeting) { running(m); m.Status.EndedAt = &metav1.Time{Time: earlier} },
			wantPhase: rtcv1alpha1.PhaseScheduled,
			wantConds: map[string]wantCond{"Ready": "False/NotStarted", "SFUAvailable": "False/NotStarted", "TURNAvailable": "False/NotStarted"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if st.EndedAt != nil {
					t.Errorf("endedAt = %v, want none", st.EndedAt)
				}
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !c.LastTransitionTime.Time.Equal(begin) {
					t.Errorf("Ready went False at %v, want now %v", c.LastTransitionTime, begin)
				}
			},
		},
		{
			name: "starting: no children yet", plan: starting, now: begin.Add(-lead),
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "False/Deploying", "TURNAvailable": "False/Deploying"},
		},
		{
			name: "starting: rollout not observed yet", plan: starting, now: begin,
			kids: func() children {
				k := up
				k.SFUDeployment = availableDep("m-sfu")
				k.SFUDeployment.Generation = 2
				return k
			}(),
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "False/Deploying", "TURNAvailable": "True/Available"},
		},
		{
			name: "starting: pods not available", plan: starting, now: begin,
			kids: func() children {
				k := up
				k.TURNDeployment = availableDep("m-turn")
				k.TURNDeployment.Status.AvailableReplicas = 0
				return k
			}(),
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "True/Available", "TURNAvailable": "False/Unavailable"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "m-turn") {
					t.Errorf("Ready message %q does not name the TURN Deployment", c.Message)
				}
			},
		},
		{
			name: "starting: media available, running", plan: starting, now: begin,
			kids:      up,
			wantPhase: rtcv1alpha1.PhaseRunning, wantEndpoints: true,
			wantConds: map[string]wantCond{"Ready": "True/Available", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if st.StartedAt == nil || !st.StartedAt.Time.Equal(begin) {
					t.Errorf("startedAt = %v, want %v", st.StartedAt, begin)
				}
				if st.SignalURL != signalURL || !slices.Equal(st.TURNURIs, turnURIs) {
					t.Errorf("endpoints %q %q", st.SignalURL, st.TURNURIs)
				}
				for _, c := range st.Conditions {
					if !c.LastTransitionTime.Time.Equal(begin) {
						t.Errorf("%s: new condition's transition time %v, want now", c.Type, c.LastTransitionTime)
					}
				}
			},
		},
		{
			name: "running stays running: times kept", plan: starting, now: begin.Add(30 * time.Minute),
			meeting: running, kids: up,
			wantPhase: rtcv1alpha1.PhaseRunning, wantEndpoints: true,
			wantConds: map[string]wantCond{"Ready": "True/Available", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if !st.StartedAt.Time.Equal(begin) {
					t.Errorf("startedAt moved to %v", st.StartedAt)
				}
				for _, c := range st.Conditions {
					if !c.LastTransitionTime.Time.Equal(earlier) {
						t.Errorf("%s: unchanged condition's transition time moved to %v", c.Type, c.LastTransitionTime)
					}
				}
			},
		},
		{
			name: "progress deadline while starting: failed", plan: starting, now: begin,
			kids:      func() children { k := up; k.SFUDeployment = stuckDep("m-sfu"); return k }(),
			wantPhase: rtcv1alpha1.PhaseFailed,
			wantConds: map[string]wantCond{"Ready": "False/ProgressDeadlineExceeded", "SFUAvailable": "False/ProgressDeadlineExceeded", "TURNAvailable": "True/Available"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "timed out progressing") {
					t.Errorf("Ready message %q does not repeat the Deployment's", c.Message)
				}
			},
		},
		{
			name: "TURN progress deadline: its message", plan: starting, now: begin,
			kids:      func() children { k := up; k.TURNDeployment = stuckDep("m-turn"); return k }(),
			wantPhase: rtcv1alpha1.PhaseFailed,
			wantConds: map[string]wantCond{"Ready": "False/ProgressDeadlineExceeded", "SFUAvailable": "True/Available", "TURNAvailable": "False/ProgressDeadlineExceeded"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "m-turn") {
					t.Errorf("Ready message %q does not name the TURN Deployment", c.Message)
				}
			},
		},
		{
			name: "TURN disabled", plan: starting, now: begin, meeting: noTURN,
			// TURN objects left over are not looked at.
			kids:      children{SFUDeployment: availableDep("m-sfu"), SFUService: sfuSvc, TURNService: turnSvc},
			wantPhase: rtcv1alpha1.PhaseRunning, wantEndpoints: true,
			wantConds: map[string]wantCond{"Ready": "True/Available", "SFUAvailable": "True/Available", "TURNAvailable": "True/Disabled"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if st.TURNURIs != nil {
					t.Errorf("turnURIs = %q without TURN", st.TURNURIs)
				}
			},
		},
		{
			name: "node port not allocated: the SFU waits for it", cfg: nodePort, plan: starting, now: begin,
			kids: children{SFUService: svcWith("m-sfu", corev1.ServiceTypeNodePort, map[string]int32{"signal": 0, "ice": 0}, ""),
				TURNDeployment: availableDep("m-turn"), TURNService: svcWith("m-turn", corev1.ServiceTypeNodePort, map[string]int32{"turn-udp": 31478, "turn-tcp": 31479}, "")},
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "False/WaitingForAddress", "TURNAvailable": "True/Available"},
		},
		{
			name: "load balancer without address: media up, no endpoints", cfg: lb, plan: starting, now: begin,
			kids: children{SFUDeployment: availableDep("m-sfu"), SFUService: svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, "198.51.100.1"),
				TURNDeployment: availableDep("m-turn"), TURNService: svcWith("m-turn", corev1.ServiceTypeLoadBalancer, nil, "")},
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/WaitingForAddress", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
		},
		{
			name: "blocked child: failed, other conditions kept", plan: starting, now: begin,
			meeting: running,
			kids: children{Blocked: &childError{reason: ReasonNameConflict,
				err: errors.New("Service m-sfu exists and is not owned by this Meeting; delete or rename it")}},
			wantPhase: rtcv1alpha1.PhaseFailed,
			wantConds: map[string]wantCond{"Ready": "False/NameConflict", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady)
				if !strings.Contains(c.Message, "m-sfu") || !c.LastTransitionTime.Time.Equal(begin) {
					t.Errorf("Ready = %+v", c)
				}
			},
		},
		{
			name: "ending with media up: stays up", plan: ending, now: end.Add(time.Minute),
			meeting: running, kids: up,
			wantPhase: rtcv1alpha1.PhaseEnding, wantEndpoints: true,
			wantConds: map[string]wantCond{"Ready": "True/Available", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
		},
		{
			name: "ending after a progress deadline: Ending, not Failed", plan: ending, now: end,
			meeting:   running,
			kids:      func() children { k := up; k.SFUDeployment = stuckDep("m-sfu"); return k }(),
			wantPhase: rtcv1alpha1.PhaseEnding,
			wantConds: map[string]wantCond{"Ready": "False/ProgressDeadlineExceeded", "SFUAvailable": "False/ProgressDeadlineExceeded", "TURNAvailable": "True/Available"},
		},
		{
			name: "created after endAt: never started", plan: ending, now: end,
			wantPhase: rtcv1alpha1.PhaseEnding,
			wantConds: map[string]wantCond{"Ready": "False/NotStarted", "SFUAvailable": "False/NotStarted", "TURNAvailable": "False/NotStarted"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "endAt passed") {
					t.Errorf("Ready message %q", c.Message)
				}
			},
		},
		{
			name: "ending, media brought up but never available: children read", plan: ending, now: end,
			meeting:   func(m *rtcv1alpha1.Meeting) { m.Finalizers = []string{rtcv1alpha1.MediaFinalizer} },
			wantPhase: rtcv1alpha1.PhaseEnding,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "False/Deploying", "TURNAvailable": "False/Deploying"},
		},
		{
			name: "ended", plan: ended, now: end.Add(grace),
			meeting:   running,
			wantPhase: rtcv1alpha1.PhaseEnded,
			wantConds: map[string]wantCond{"Ready": "False/TornDown", "SFUAvailable": "False/TornDown", "TURNAvailable": "False/TornDown"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if st.EndedAt == nil || !st.EndedAt.Time.Equal(end.Add(grace)) {
					t.Errorf("endedAt = %v, want now", st.EndedAt)
				}
				if st.NextTransitionAt != nil {
					t.Errorf("nextTransitionAt = %v after the end", st.NextTransitionAt)
				}
				if !st.StartedAt.Time.Equal(begin) {
					t.Errorf("startedAt = %v, want it kept", st.StartedAt)
				}
			},
		},
		{
			name: "ended stays ended: endedAt kept", plan: ended, now: end.Add(time.Hour),
			meeting:   func(m *rtcv1alpha1.Meeting) { m.Status.EndedAt = &metav1.Time{Time: end.Add(grace)} },
			wantPhase: rtcv1alpha1.PhaseEnded,
			wantConds: map[string]wantCond{"Ready": "False/TornDown", "SFUAvailable": "False/TornDown", "TURNAvailable": "False/TornDown"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if !st.EndedAt.Time.Equal(end.Add(grace)) {
					t.Errorf("endedAt = %v, want it kept", st.EndedAt)
				}
			},
		},
		{
			name: "ended meeting extended: starting again", plan: starting, now: end.Add(time.Hour),
			meeting: func(m *rtcv1alpha1.Meeting) {
				m.Status.Phase, m.Status.EndedAt = rtcv1alpha1.PhaseEnded, &metav1.Time{Time: end.Add(grace)}
			},
			wantPhase: rtcv1alpha1.PhaseStarting,
			wantConds: map[string]wantCond{"Ready": "False/Deploying", "SFUAvailable": "False/Deploying", "TURNAvailable": "False/Deploying"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if st.EndedAt != nil {
					t.Errorf("endedAt = %v, want none", st.EndedAt)
				}
			},
		},
		{
			name: "invalid window: failed, rest kept", planErr: fmt.Errorf("%w (beginAt x, endAt y)", schedule.ErrInvalidWindow), now: begin,
			meeting: func(m *rtcv1alpha1.Meeting) {
				running(m)
				m.Status.NextTransitionAt = &metav1.Time{Time: end}
			},
			wantPhase: rtcv1alpha1.PhaseFailed, wantEndpoints: true,
			wantConds: map[string]wantCond{"Ready": "False/InvalidSchedule", "SFUAvailable": "True/Available", "TURNAvailable": "True/Available"},
			check: func(t *testing.T, st rtcv1alpha1.MeetingStatus) {
				if c := meta.FindStatusCondition(st.Conditions, rtcv1alpha1.ConditionReady); !strings.Contains(c.Message, "endAt must be after beginAt") {
					t.Errorf("Ready message %q", c.Message)
				}
				if st.NextTransitionAt == nil || !st.NextTransitionAt.Time.Equal(end) {
					t.Errorf("nextTransitionAt = %v, want it kept", st.NextTransitionAt)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMeeting()
			m.Generation = 3
			m.Spec.Participants = []string{"a", "b", "c"} // c is the creator: 3 invited
			if tt.meeting != nil {
				tt.meeting(m)
			}
			before := m.DeepCopy()
			cfg := tt.cfg
			if cfg.ServiceType == "" {
				cfg = cluster
			}
			st := desiredStatus(cfg, statusInput{Meeting: m, Children: tt.kids, Plan: tt.plan, PlanErr: tt.planErr, Now: tt.now})

			if st.Phase != tt.wantPhase {
				t.Errorf("phase = %s, want %s", st.Phase, tt.wantPhase)
			}
			got := map[string]wantCond{}
			for _, c := range st.Conditions {
				got[c.Type] = string(c.Status) + "/" + c.Reason
				if c.Message != "before" && c.ObservedGeneration != 3 {
					t.Errorf("%s: observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
				}
			}
			for typ, want := range tt.wantConds {
				if got[typ] != want {
					t.Errorf("%s = %s, want %s", typ, got[typ], want)
				}
			}
			if len(got) != len(tt.wantConds) {
				t.Errorf("conditions %v, want %v", got, tt.wantConds)
			}
			if hasEndpoints := st.SignalURL != ""; hasEndpoints != tt.wantEndpoints {
				t.Errorf("signalURL = %q, want set: %v", st.SignalURL, tt.wantEndpoints)
			}
			if !tt.wantEndpoints && st.TURNURIs != nil {
				t.Errorf("turnURIs = %q without endpoints", st.TURNURIs)
			}
			if st.ObservedGeneration != 3 || st.Identity != "uid-1" || st.Participants != 3 {
				t.Errorf("observedGeneration %d, identity %q, participants %d", st.ObservedGeneration, st.Identity, st.Participants)
			}
			if tt.planErr == nil {
				if tt.plan.Next.IsZero() != (st.NextTransitionAt == nil) || (st.NextTransitionAt != nil && !st.NextTransitionAt.Time.Equal(tt.plan.Next)) {
					t.Errorf("nextTransitionAt = %v, want %v", st.NextTransitionAt, tt.plan.Next)
				}
			}
			if tt.check != nil {
				tt.check(t, st)
			}
			// Pure: the Meeting it was given is left as it was.
			if !reflect.DeepEqual(before, m) {
				t.Errorf("desiredStatus changed its input")
			}
		})
	}
}
