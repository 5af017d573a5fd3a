package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

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

// conflictRetry is how often a Meeting blocked by a foreign object retries.
const conflictRetry = time.Minute

// What the operator uses, and nothing else (config/rbac/role.yaml is generated from these):
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings,verbs=get;list;watch;update
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings/status,verbs=patch
// +kubebuilder:rbac:groups=rtc.meeting.dev,resources=meetings/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=services;secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// MeetingReconciler runs a Meeting's media for its time window.
type MeetingReconciler struct {
	// Client reads from the manager's cache and writes to the API server.
	Client client.Client
	// APIReader reads past the cache: children the cache does not hold
	// (objects without the Meeting label) are found through it.
	APIReader client.Reader
	// Clock is the time every decision uses; tests inject a fake one.
	Clock clock.WithDelayedExecution
	// Recorder records an Event on every phase transition.
	Recorder events.EventRecorder
	// Config is the operator's configuration.
	Config Config
	// Workers is the number of Meetings reconciled at once (default 1).
	Workers int
	// Metrics registers the operator's metrics; nil keeps them unregistered.
	Metrics prometheus.Registerer

	alarms  *alarms
	metrics *metrics
}

// SetupWithManager registers the reconciler, its watches and its alarms.
func (r *MeetingReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.Config.Validate(); err != nil {
		return fmt.Errorf("meeting controller config: %w", err)
	}
	if r.Client == nil || r.APIReader == nil || r.Clock == nil || r.Recorder == nil {
		return errors.New("meeting controller: Client, APIReader, Clock and Recorder are required")
	}
	m, err := newMetrics(r.Metrics)
	if err != nil {
		return err
	}
	r.metrics = m
	r.alarms = newAlarms(r.Clock)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		<-ctx.Done()
		r.alarms.stop()
		return nil
	})); err != nil {
		return fmt.Errorf("meeting controller alarms: %w", err)
	}
	workers := max(r.Workers, 1)
	return ctrl.NewControllerManagedBy(mgr).
		Named("meeting").
		// Every update of a Meeting, its status included, is reconciled: status
		// decided on a cache a step behind is put right once the cache catches
		// up (the reconcile of an up-to-date Meeting writes nothing).
		For(&rtcv1alpha1.Meeting{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&corev1.Secret{}).
		WatchesRawSource(source.Channel(r.alarms.out, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// conflictRequeue is how soon a reconcile that lost a write race runs again,
// on a cache that has caught up by then.
const conflictRequeue = 100 * time.Millisecond

// Reconcile brings one Meeting's children in line with its schedule and
// rebuilds its status from them. A write that lost a race with another write
// (the cache was a step behind) is retried soon, not reported as an error.
func (r *MeetingReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		logf.FromContext(ctx).V(1).Info("write conflict; retrying", "err", err.Error())
		return ctrl.Result{RequeueAfter: conflictRequeue}, nil
	}
	return res, err
}

func (r *MeetingReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var m rtcv1alpha1.Meeting
	if err := r.Client.Get(ctx, req.NamespacedName, &m); err != nil {
		if apierrors.IsNotFound(err) {
			r.alarms.set(req.NamespacedName, time.Time{})
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get meeting: %w", err)
	}
	if !m.DeletionTimestamp.IsZero() {
		r.alarms.set(req.NamespacedName, time.Time{})
		return ctrl.Result{}, r.teardown(ctx, &m)
	}

	now := r.Clock.Now()
	old := m.Status.DeepCopy()
	st := &m.Status
	st.ObservedGeneration = m.Generation
	st.Identity = m.RoomIdentity()
	st.Participants = m.InvitedCount()

	plan, err := schedule.At(
		schedule.Window{BeginAt: m.Spec.BeginAt.Time, EndAt: m.Spec.EndAt.Time}, now,
		schedule.Policy{LeadTime: r.Config.LeadTime, Grace: r.Config.EndGrace})
	if err != nil {
		// Only a Meeting that bypassed the schema gets here: say why, don't retry.
		r.fail(st, ReasonInvalidSchedule, err.Error(), now)
		r.alarms.set(req.NamespacedName, time.Time{})
		return ctrl.Result{}, r.writeStatus(ctx, &m, old)
	}
	if plan.Next.IsZero() {
		st.NextTransitionAt = nil
	} else {
		st.NextTransitionAt = &metav1.Time{Time: plan.Next}
	}

	var result ctrl.Result
	switch plan.Phase {
	case schedule.Scheduled:
		// Also where an edit that postponed a running meeting lands.
		if err := r.teardown(ctx, &m); err != nil {
			return ctrl.Result{}, err
		}
		st.Phase = rtcv1alpha1.PhaseScheduled
		st.EndedAt = nil
		clearEndpoints(st)
		setAll(st, false, ReasonNotStarted, "the media comes up at "+plan.StartAt.UTC().Format(time.RFC3339), now)
	case schedule.Starting:
		st.EndedAt = nil
		result, err = r.run(ctx, &m, now, plan.StartAt)
		if err != nil {
			return ctrl.Result{}, err
		}
	case schedule.Ending:
		// Media that runs stays for the grace period; none is started now.
		if err := r.observe(ctx, &m, now, rtcv1alpha1.PhaseEnding); err != nil {
			return ctrl.Result{}, err
		}
		if st.StartedAt == nil && !controllerutil.ContainsFinalizer(&m, rtcv1alpha1.MediaFinalizer) {
			setAll(st, false, ReasonNotStarted, "endAt passed before the media was brought up", now)
		}
	case schedule.Ended:
		if err := r.teardown(ctx, &m); err != nil {
			return ctrl.Result{}, err
		}
		st.Phase = rtcv1alpha1.PhaseEnded
		if st.EndedAt == nil {
			st.EndedAt = &metav1.Time{Time: now}
		}
		clearEndpoints(st)
		setAll(st, false, ReasonTornDown, "the meeting has ended and its media was removed", now)
	}
	r.alarms.set(req.NamespacedName, plan.Next)
	return result, r.writeStatus(ctx, &m, old)
}

// run ensures the children of a Meeting whose media is due and reads their
// state into status.
func (r *MeetingReconciler) run(ctx context.Context, m *rtcv1alpha1.Meeting, now, due time.Time) (ctrl.Result, error) {
	first := controllerutil.AddFinalizer(m, rtcv1alpha1.MediaFinalizer)
	if first {
		status := m.Status.DeepCopy()
		if err := r.Client.Update(ctx, m); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
		m.Status = *status
	}
	if err := r.ensure(ctx, m); err != nil {
		var ce *childError
		if errors.As(err, &ce) {
			r.fail(&m.Status, ce.reason, ce.Error(), now)
			clearEndpoints(&m.Status)
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		return ctrl.Result{}, err
	}
	if first {
		// The media of this window was brought up just now.
		r.metrics.startLag.Observe(now.Sub(due).Seconds())
	}
	return ctrl.Result{}, r.observe(ctx, m, now, rtcv1alpha1.PhaseStarting)
}

// childError is a problem with a child that retrying soon will not fix.
type childError struct {
	reason string
	err    error
}

func (e *childError) Error() string { return e.err.Error() }
func (e *childError) Unwrap() error { return e.err }

// ensure creates or updates the Secret, Services and Deployments of a Meeting.
func (r *MeetingReconciler) ensure(ctx context.Context, m *rtcv1alpha1.Meeting) error {
	if err := r.ensureSecret(ctx, m); err != nil {
		return err
	}
	sfuSvc, err := applyObject(ctx, r, m, RenderSFUService(m, r.Config), &corev1.Service{}, mergeService)
	if err != nil {
		return err
	}
	if m.Spec.Media.TURNEnabled() {
		if _, err := applyObject(ctx, r, m, RenderTURNService(m, r.Config), &corev1.Service{}, mergeService); err != nil {
			return err
		}
		if _, err := applyObject(ctx, r, m, RenderTURNDeployment(m, r.Config), &appsv1.Deployment{}, mergeDeployment); err != nil {
			return err
		}
	} else if err := r.deleteChildren(ctx, m, TURNName(m.Name)); err != nil {
		return err
	}
	if n, ok := SFUNetworkFor(r.Config, sfuSvc); ok {
		if _, err := applyObject(ctx, r, m, RenderSFUDeployment(m, r.Config, n), &appsv1.Deployment{}, mergeDeployment); err != nil {
			return err
		}
	}
	return nil
}

// ensureSecret creates the room's Secret once. Its keys are never replaced:
// a missing key is added, present ones are kept as they are.
func (r *MeetingReconciler) ensureSecret(ctx context.Context, m *rtcv1alpha1.Meeting) error {
	var cur corev1.Secret
	key := types.NamespacedName{Namespace: m.Namespace, Name: SecretName(m.Name)}
	err := r.Client.Get(ctx, key, &cur)
	if apierrors.IsNotFound(err) {
		tokenKey, err := newKey()
		if err != nil {
			return err
		}
		turnKey, err := newKey()
		if err != nil {
			return err
		}
		err = r.Client.Create(ctx, RenderSecret(m, tokenKey, turnKey))
		if err == nil {
			return nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return classify(err, "Secret", key.Name)
		}
		// Not in the cache: unlabelled, or the cache is behind. Look past it.
		if err := r.APIReader.Get(ctx, key, &cur); err != nil {
			return fmt.Errorf("get Secret %s: %w", key.Name, err)
		}
	} else if err != nil {
		return fmt.Errorf("get Secret %s: %w", key.Name, err)
	}
	if !metav1.IsControlledBy(&cur, m) {
		return conflict("Secret", key.Name)
	}
	want := RenderSecret(m, nil, nil)
	upd := cur.DeepCopy()
	upd.Labels = mergeMap(upd.Labels, want.Labels)
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	for _, k := range []string{SecretTokenKey, SecretTURNKey} {
		if len(upd.Data[k]) == 0 {
			v, err := newKey()
			if err != nil {
				return err
			}
			upd.Data[k] = v
		}
	}
	if equality.Semantic.DeepEqual(&cur, upd) {
		return nil
	}
	if err := r.Client.Update(ctx, upd); err != nil {
		return fmt.Errorf("update Secret %s: %w", key.Name, err)
	}
	return nil
}

// newKey returns 32 random bytes, hex-encoded: the key travels in an
// environment variable, so it must be text; the text is the key.
func newKey() ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return []byte(hex.EncodeToString(b)), nil
}

// applyObject creates want, or updates the existing object when its recorded
// hash differs from want's; an unchanged object is not written. merge copies
// what the operator owns from want onto a copy of the existing object.
func applyObject[T client.Object](ctx context.Context, r *MeetingReconciler, m *rtcv1alpha1.Meeting, want T, cur T, merge func(cur, want T)) (T, error) {
	kind := kindOf(want)
	key := client.ObjectKeyFromObject(want)
	err := r.Client.Get(ctx, key, cur)
	if apierrors.IsNotFound(err) {
		err = r.Client.Create(ctx, want)
		if err == nil {
			return want, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return cur, classify(err, kind, key.Name)
		}
		if err := r.APIReader.Get(ctx, key, cur); err != nil {
			return cur, fmt.Errorf("get %s %s: %w", kind, key.Name, err)
		}
	} else if err != nil {
		return cur, fmt.Errorf("get %s %s: %w", kind, key.Name, err)
	}
	if !metav1.IsControlledBy(cur, m) {
		return cur, conflict(kind, key.Name)
	}
	if cur.GetAnnotations()[HashAnnotation] == want.GetAnnotations()[HashAnnotation] &&
		hasAll(cur.GetLabels(), want.GetLabels()) {
		return cur, nil
	}
	upd := cur.DeepCopyObject().(T)
	upd.SetLabels(mergeMap(upd.GetLabels(), want.GetLabels()))
	upd.SetAnnotations(mergeMap(upd.GetAnnotations(), want.GetAnnotations()))
	merge(upd, want)
	if err := r.Client.Update(ctx, upd); err != nil {
		return cur, classify(err, kind, key.Name)
	}
	return upd, nil
}

// mergeService sets the parts of a Service the operator owns, keeping what
// the API server allocated (cluster IPs, node ports).
func mergeService(cur, want *corev1.Service) {
	old := map[string]int32{}
	for _, p := range cur.Spec.Ports {
		old[p.Name] = p.NodePort
	}
	ports := make([]corev1.ServicePort, len(want.Spec.Ports))
	copy(ports, want.Spec.Ports)
	if want.Spec.Type != corev1.ServiceTypeClusterIP {
		for i := range ports {
			ports[i].NodePort = old[ports[i].Name]
		}
	}
	cur.Spec.Type = want.Spec.Type
	cur.Spec.Selector = want.Spec.Selector
	cur.Spec.Ports = ports
}

// mergeDeployment sets the parts of a Deployment the operator owns.
func mergeDeployment(cur, want *appsv1.Deployment) {
	cur.Spec.Replicas = want.Spec.Replicas
	cur.Spec.Strategy = want.Spec.Strategy
	cur.Spec.Template = want.Spec.Template
}

func conflict(kind, name string) error {
	return &childError{reason: ReasonNameConflict,
		err: fmt.Errorf("%s %s exists and is not owned by this Meeting; delete or rename it", kind, name)}
}

// classify turns a rejected write into a childError when retrying will not
// help, and wraps it otherwise.
func classify(err error, kind, name string) error {
	if apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return &childError{reason: ReasonInvalidChild, err: fmt.Errorf("%s %s rejected: %w", kind, name, err)}
	}
	return fmt.Errorf("write %s %s: %w", kind, name, err)
}

// observe reads the children into status: conditions, endpoints and the phase
// (base while media is not available, Running once it is; Ending stays Ending).
func (r *MeetingReconciler) observe(ctx context.Context, m *rtcv1alpha1.Meeting, now time.Time, base rtcv1alpha1.Phase) error {
	st := &m.Status
	sfuDep, sfuSvc, err := r.children(ctx, m, SFUName(m.Name))
	if err != nil {
		return err
	}
	sfuOK, sfuReason, sfuMsg := available(sfuDep)
	if _, known := SFUNetworkFor(r.Config, sfuSvc); sfuDep == nil && sfuSvc != nil && !known {
		// The SFU must announce an address that is not allocated yet.
		sfuReason, sfuMsg = ReasonWaitingForAddress, fmt.Sprintf("Service %s has no %s address yet; the SFU starts once it has", sfuSvc.Name, r.Config.ServiceType)
	}
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionSFUAvailable, sfuOK, sfuReason, sfuMsg, now))

	turnOK, turnReason, turnMsg := true, ReasonDisabled, "the meeting runs without TURN"
	var turnSvc *corev1.Service
	if m.Spec.Media.TURNEnabled() {
		var turnDep *appsv1.Deployment
		turnDep, turnSvc, err = r.children(ctx, m, TURNName(m.Name))
		if err != nil {
			return err
		}
		turnOK, turnReason, turnMsg = available(turnDep)
	}
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionTURNAvailable, turnOK, turnReason, turnMsg, now))

	signalURL, turnURIs, addrOK := Endpoints(m, r.Config, sfuSvc, turnSvc)
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
	return nil
}

// children returns the Deployment and Service of one component, nil for
// those that do not exist or that this Meeting does not control.
func (r *MeetingReconciler) children(ctx context.Context, m *rtcv1alpha1.Meeting, name string) (*appsv1.Deployment, *corev1.Service, error) {
	key := types.NamespacedName{Namespace: m.Namespace, Name: name}
	dep := &appsv1.Deployment{}
	if err := r.Client.Get(ctx, key, dep); apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(dep, m)) {
		dep = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("get Deployment %s: %w", name, err)
	}
	svc := &corev1.Service{}
	if err := r.Client.Get(ctx, key, svc); apierrors.IsNotFound(err) || (err == nil && !metav1.IsControlledBy(svc, m)) {
		svc = nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("get Service %s: %w", name, err)
	}
	return dep, svc, nil
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

// teardown deletes every child of a Meeting, then drops its finalizer.
func (r *MeetingReconciler) teardown(ctx context.Context, m *rtcv1alpha1.Meeting) error {
	if err := r.deleteChildren(ctx, m, SFUName(m.Name), TURNName(m.Name)); err != nil {
		return err
	}
	if err := r.deleteOwned(ctx, m, &corev1.Secret{}, SecretName(m.Name)); err != nil {
		return err
	}
	if controllerutil.RemoveFinalizer(m, rtcv1alpha1.MediaFinalizer) {
		status := m.Status.DeepCopy()
		if err := r.Client.Update(ctx, m); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("remove finalizer: %w", err)
		}
		m.Status = *status
	}
	return nil
}

// deleteChildren deletes the Deployments and Services of the given names.
func (r *MeetingReconciler) deleteChildren(ctx context.Context, m *rtcv1alpha1.Meeting, names ...string) error {
	for _, n := range names {
		if err := r.deleteOwned(ctx, m, &appsv1.Deployment{}, n); err != nil {
			return err
		}
		if err := r.deleteOwned(ctx, m, &corev1.Service{}, n); err != nil {
			return err
		}
	}
	return nil
}

// deleteOwned deletes the named object if this Meeting controls it.
func (r *MeetingReconciler) deleteOwned(ctx context.Context, m *rtcv1alpha1.Meeting, obj client.Object, name string) error {
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: m.Namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get %s %s: %w", kindOf(obj), name, err)
	}
	if !metav1.IsControlledBy(obj, m) {
		return nil
	}
	uid := obj.GetUID()
	err = r.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete %s %s: %w", kindOf(obj), name, err)
	}
	return nil
}

// writeStatus writes status when it changed and records an Event when the
// phase did.
func (r *MeetingReconciler) writeStatus(ctx context.Context, m *rtcv1alpha1.Meeting, old *rtcv1alpha1.MeetingStatus) error {
	if equality.Semantic.DeepEqual(old, &m.Status) {
		return nil
	}
	// The patch carries the resourceVersion read: status decided on a stale
	// read is refused (and retried) rather than written with a second Event.
	base := m.DeepCopy()
	base.Status = *old
	if err := r.Client.Status().Patch(ctx, m, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("update status: %w", err)
	}
	if old.Phase != m.Status.Phase {
		r.metrics.transitions.WithLabelValues(string(m.Status.Phase)).Inc()
		logf.FromContext(ctx).Info("phase changed", "from", old.Phase, "to", m.Status.Phase)
		typ, note := corev1.EventTypeNormal, phaseNote(m)
		if m.Status.Phase == rtcv1alpha1.PhaseFailed {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(m, nil, typ, string(m.Status.Phase), "Reconcile", "%s", note)
	}
	return nil
}

func phaseNote(m *rtcv1alpha1.Meeting) string {
	switch m.Status.Phase {
	case rtcv1alpha1.PhaseScheduled:
		return "media comes up " + m.Spec.BeginAt.UTC().Format(time.RFC3339) + " minus the lead time"
	case rtcv1alpha1.PhaseStarting:
		return "bringing up the SFU and TURN server"
	case rtcv1alpha1.PhaseRunning:
		return "media available at " + m.Status.SignalURL
	case rtcv1alpha1.PhaseEnding:
		return "endAt passed; media stays up for the grace period"
	case rtcv1alpha1.PhaseEnded:
		return "media removed"
	default:
		if c := meta.FindStatusCondition(m.Status.Conditions, rtcv1alpha1.ConditionReady); c != nil {
			return c.Message
		}
		return "failed"
	}
}

// fail sets phase Failed with the reason on the Ready condition.
func (r *MeetingReconciler) fail(st *rtcv1alpha1.MeetingStatus, reason, msg string, now time.Time) {
	st.Phase = rtcv1alpha1.PhaseFailed
	meta.SetStatusCondition(&st.Conditions, condition(st, rtcv1alpha1.ConditionReady, false, reason, msg, now))
}

func clearEndpoints(st *rtcv1alpha1.MeetingStatus) {
	st.SignalURL, st.TURNURIs = "", nil
}

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

func mergeMap(dst, src map[string]string) map[string]string {
	out := make(map[string]string, len(dst)+len(src))
	for k, v := range dst {
		out[k] = v
	}
	for k, v := range src {
		out[k] = v
	}
	return out
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// kindOf names an object's Go type (Service, Deployment) for messages.
func kindOf(obj any) string {
	t := reflect.TypeOf(obj)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
