package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/schedule"
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

// reconcile is one round of a Meeting's flow: load it, plan its window
// (internal/schedule), act on its children (updater.go) and list them, decide
// its status (status.go, pure), write the status and set the wake-up for its
// next transition. The children are listed after acting, so the status
// written describes what this round left behind.
func (r *MeetingReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	// Load.
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
	plan, planErr := schedule.At(
		schedule.Window{BeginAt: m.Spec.BeginAt.Time, EndAt: m.Spec.EndAt.Time}, now,
		schedule.Policy{LeadTime: r.Config.LeadTime, Grace: r.Config.EndGrace})

	// Act on the children as the plan says, then list what they are.
	kids, err := r.act(ctx, &m, plan, planErr, now)
	if err != nil {
		return ctrl.Result{}, err
	}

	// Decide the status from the Meeting, its children, the plan and now.
	m.Status = desiredStatus(r.Config, statusInput{Meeting: &m, Children: kids, Plan: plan, PlanErr: planErr, Now: now})

	// Requeue: the alarm wakes the Meeting at its next transition (never for
	// an invalid window, whose plan is empty: bad input is not retried); a
	// blocked child is looked at again after a while.
	r.alarms.set(req.NamespacedName, plan.Next)
	var result ctrl.Result
	if kids.Blocked != nil {
		result.RequeueAfter = conflictRetry
	}
	return result, r.writeStatus(ctx, &m, old)
}

// act brings the children of a Meeting in line with its plan, through the
// updater, and lists them afterwards where the status depends on them: while
// the media is due (Starting) and during the grace period (Ending).
func (r *MeetingReconciler) act(ctx context.Context, m *rtcv1alpha1.Meeting, plan schedule.Plan, planErr error, now time.Time) (children, error) {
	if planErr != nil {
		// Only a Meeting that bypassed the schema gets here; its status says why.
		return children{}, nil
	}
	switch plan.Phase {
	case schedule.Scheduled, schedule.Ended:
		// Scheduled is also where an edit that postponed a running meeting lands.
		return children{}, r.teardown(ctx, m)
	case schedule.Starting:
		blocked, err := r.bringUp(ctx, m, now, plan.StartAt)
		if err != nil || blocked != nil {
			return children{Blocked: blocked}, err
		}
	}
	// Ending: media that runs stays for the grace period; none is started now.
	return r.listChildren(ctx, m)
}

// listChildren reads the SFU's Deployment and Service and, when the meeting
// uses TURN, the TURN server's.
func (r *MeetingReconciler) listChildren(ctx context.Context, m *rtcv1alpha1.Meeting) (children, error) {
	var kids children
	var err error
	kids.SFUDeployment, kids.SFUService, err = r.component(ctx, m, SFUName(m.Name))
	if err != nil {
		return children{}, err
	}
	if m.Spec.Media.TURNEnabled() {
		kids.TURNDeployment, kids.TURNService, err = r.component(ctx, m, TURNName(m.Name))
		if err != nil {
			return children{}, err
		}
	}
	return kids, nil
}

// component returns the Deployment and Service of one component, nil for
// those that do not exist or that this Meeting does not control.
func (r *MeetingReconciler) component(ctx context.Context, m *rtcv1alpha1.Meeting, name string) (*appsv1.Deployment, *corev1.Service, error) {
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
