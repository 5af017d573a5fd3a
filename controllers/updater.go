package controllers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// The updater: every write the reconciler makes. Children are created, or
// updated only when their rendered form changed; status is patched only when
// it changed, under an optimistic lock (a conflict sends the whole reconcile
// round again, see Reconcile); a phase change records an Event.

// bringUp puts the media finalizer on a Meeting whose media is due and applies
// its children. A problem that retrying soon will not fix comes back as
// blocked, not as an error.
func (r *MeetingReconciler) bringUp(ctx context.Context, m *rtcv1alpha1.Meeting, now, due time.Time) (blocked *childError, err error) {
	first := controllerutil.AddFinalizer(m, rtcv1alpha1.MediaFinalizer)
	if first {
		// The update returns the stored status; keep the one read.
		status := m.Status.DeepCopy()
		if err := r.Client.Update(ctx, m); err != nil {
			return nil, fmt.Errorf("add finalizer: %w", err)
		}
		m.Status = *status
	}
	if err := r.ensure(ctx, m); err != nil {
		var ce *childError
		if errors.As(err, &ce) {
			return ce, nil
		}
		return nil, err
	}
	if first {
		// The media of this window was brought up just now.
		r.metrics.startLag.Observe(now.Sub(due).Seconds())
	}
	return nil, nil
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
