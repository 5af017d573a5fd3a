package controllers

import (
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/schedule"
)

// Reasons of the Ready, SFUAvailable and TURNAvailable conditions (Events take
// the phase names). Each constant is named for its value; the values are
// written to the API, so they never change.
const (
	ReasonNameConflict             = "NameConflict"
	ReasonInvalidChild             = "InvalidChild"
	ReasonInvalidSchedule          = "InvalidSchedule"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonNotStarted               = "NotStarted"
	ReasonDeploying                = "Deploying"
	ReasonAvailable                = "Available"
	ReasonUnavailable              = "Unavailable"
	ReasonWaitingForAddress        = "WaitingForAddress"
	ReasonTornDown                 = "TornDown"
	ReasonDisabled                 = "Disabled"
)

// children is what the reconciler found of a Meeting's children once it had
// acted on them. An object is nil when it does not exist or this Meeting does
// not control it.
type children struct {
	SFUDeployment  *appsv1.Deployment
	SFUService     *corev1.Service
	TURNDeployment *appsv1.Deployment
	TURNService    *corev1.Service
	// Blocked is set when applying the children met a problem that retrying
	// soon will not fix (a foreign object holds a name, a write was rejected);
	// the objects are not read then.
	Blocked *childError
}

// statusInput is everything a Meeting's status is decided from.
type statusInput struct {
	// Meeting is the Meeting as loaded: its spec and finalizers, and the status
	// last written, whose timestamps (startedAt, endedAt, conditions'
	// transition times) carry over.
	Meeting *rtcv1alpha1.Meeting
	// Children is what the Meeting's children are after this reconcile acted.
	Children children
	// Plan is the schedule's decision at Now; PlanErr is set instead when the
	// Meeting's window is invalid.
	Plan    schedule.Plan
	PlanErr error
	// Now is the injected clock's time of this reconcile.
	Now time.Time
}

// desiredStatus decides a Meeting's status: its phase, conditions, endpoints
// and timestamps. It is pure: the reconciler reads the inputs and writes the
// result.
func desiredStatus(cfg Config, in statusInput) rtcv1alpha1.MeetingStatus {
	m, now := in.Meeting, in.Now
	st := *m.Status.DeepCopy()
	st.ObservedGeneration = m.Generation
	st.Identity = m.RoomIdentity()
	st.Participants = m.InvitedCount()

	if in.PlanErr != nil {
		// Only a Meeting that bypassed the schema gets here: say why.
		fail(&st, ReasonInvalidSchedule, in.PlanErr.Error(), now)
		return st
	}
	if in.Plan.Next.IsZero() {
		st.NextTransitionAt = nil
	} else {
		st.NextTransitionAt = &metav1.Time{Time: in.Plan.Next}
	}

	switch in.Plan.Phase {
	case schedule.Scheduled:
		st.Phase = rtcv1alpha1.PhaseScheduled
		st.EndedAt = nil
		clearEndpoints(&st)
		setAll(&st, false, ReasonNotStarted, "the media comes up at "+in.Plan.StartAt.UTC().Format(time.RFC3339), now)
	case schedule.Starting:
		st.EndedAt = nil
		if b := in.Children.Blocked; b != nil {
			fail(&st, b.reason, b.Error(), now)
			clearEndpoints(&st)
			return st
		}
		mediaStatus(&st, cfg, m, in.Children, now, rtcv1alpha1.PhaseStarting)
	case schedule.Ending:
		// Media that runs stays for the grace period; none is started now.
		mediaStatus(&st, cfg, m, in.Children, now, rtcv1alpha1.PhaseEnding)
		if st.StartedAt == nil && !controllerutil.ContainsFinalizer(m, rtcv1alpha1.MediaFinalizer) {
			setAll(&st, false, ReasonNotStarted, "endAt passed before the media was brought up", now)
		}
	case schedule.Ended:
		st.Phase = rtcv1alpha1.PhaseEnded
		if st.EndedAt == nil {
			st.EndedAt = &metav1.Time{Time: now}
		}
		clearEndpoints(&st)
		setAll(&st, false, ReasonTornDown, "the meeting has ended and its media was removed", now)
	}
	return st
}

// mediaStatus reads the children into status: conditions, endpoints and the
// phase (base while media is not available, Running once it is; Ending stays
// Ending).
func mediaStatus(st *rtcv1alpha1.MeetingStatus, cfg Config, m *rtcv1alpha1.Meeting, kids children, now time.Time, base rtcv1alpha1.Phase) {
	sfuDep, sfuSvc := kids.SFUDeployment, kids.SFUService
	sfuOK, sfuReason, sfuMsg := available(sfuDep)
	if _, known := SFUNetworkFor(cfg, sfuSvc); sfuDep == nil && sfuSvc != nil && !known {
		// The SFU must announce an address that is not allocated yet.
		sfuReason, sfuMsg = ReasonWaitingForAddress, fmt.Sprintf("Service %s has no %s address yet; the SFU starts once it has", sfuSvc.Name, cfg.ServiceType)
	}
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionSFUAvailable, sfuOK, sfuReason, sfuMsg, now))

	turnOK, turnReason, turnMsg := true, ReasonDisabled, "the meeting runs without TURN"
	var turnSvc *corev1.Service
	if m.Spec.Media.TURNEnabled() {
		turnSvc = kids.TURNService
		turnOK, turnReason, turnMsg = available(kids.TURNDeployment)
	}
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionTURNAvailable, turnOK, turnReason, turnMsg, now))

	signalURL, turnURIs, addrOK := Endpoints(m, cfg, sfuSvc, turnSvc)
	ready := sfuOK && turnOK && addrOK
	switch {
	case ready:
		st.SignalURL, st.TURNURIs = signalURL, turnURIs
		meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, true, ReasonAvailable, "the SFU and TURN server are available", now))
		if base == rtcv1alpha1.PhaseStarting {
			base = rtcv1alpha1.PhaseRunning
		}
		if st.StartedAt == nil {
			st.StartedAt = &metav1.Time{Time: now}
		}
	case sfuReason == ReasonProgressDeadlineExceeded || turnReason == ReasonProgressDeadlineExceeded:
		clearEndpoints(st)
		msg := sfuMsg
		if turnReason == ReasonProgressDeadlineExceeded {
			msg = turnMsg
		}
		meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, false, ReasonProgressDeadlineExceeded, msg, now))
		if base == rtcv1alpha1.PhaseStarting {
			base = rtcv1alpha1.PhaseFailed
		}
	case sfuOK && turnOK:
		clearEndpoints(st)
		meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, false, ReasonWaitingForAddress, "waiting for the Services' public addresses or ports", now))
	default:
		clearEndpoints(st)
		msg := sfuMsg
		if sfuOK {
			msg = turnMsg
		}
		meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, false, ReasonDeploying, msg, now))
	}
	st.Phase = base
}

// available reads a Deployment's availability as the deployment controller
// reports it.
func available(d *appsv1.Deployment) (ok bool, reason, msg string) {
	if d == nil {
		return false, ReasonDeploying, "the Deployment does not exist yet"
	}
	if d.Status.ObservedGeneration < d.Generation {
		return false, ReasonDeploying, fmt.Sprintf("Deployment %s: rollout of generation %d not observed yet", d.Name, d.Generation)
	}
	for _, c := range d.Status.Conditions {
		// The deployment controller's own reason, which ours repeats.
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return false, ReasonProgressDeadlineExceeded, fmt.Sprintf("Deployment %s: %s", d.Name, c.Message)
		}
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue && d.Status.AvailableReplicas > 0 {
			return true, ReasonAvailable, fmt.Sprintf("Deployment %s is available", d.Name)
		}
	}
	return false, ReasonUnavailable, fmt.Sprintf("Deployment %s has no available pod yet", d.Name)
}

// fail sets phase Failed with the reason on the Ready condition.
func fail(st *rtcv1alpha1.MeetingStatus, reason, msg string, now time.Time) {
	st.Phase = rtcv1alpha1.PhaseFailed
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, false, reason, msg, now))
}

func clearEndpoints(st *rtcv1alpha1.MeetingStatus) {
	st.SignalURL, st.TURNURIs = "", nil
}

// setAll sets the Ready, SFUAvailable and TURNAvailable conditions alike.
func setAll(st *rtcv1alpha1.MeetingStatus, ok bool, reason, msg string, now time.Time) {
	for _, t := range []string{rtcv1alpha1.ConditionReady, rtcv1alpha1.ConditionSFUAvailable, rtcv1alpha1.ConditionTURNAvailable} {
		meta.SetStatusCondition(&st.Conditions, condition(st, t, ok, reason, msg, now))
	}
}

// condition is one condition of a Meeting observed at now. Set it with
// meta.SetStatusCondition, which keeps the LastTransitionTime of a condition
// whose status did not change and takes now for one whose status did.
func condition(st *rtcv1alpha1.MeetingStatus, typ string, ok bool, reason, msg string, now time.Time) metav1.Condition {
	s := metav1.ConditionFalse
	if ok {
		s = metav1.ConditionTrue
	}
	return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: msg,
		ObservedGeneration: st.ObservedGeneration, LastTransitionTime: metav1.Time{Time: now}}
}
