package controllers

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// NewScheme returns a scheme with the built-in types and the Meeting API.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add built-in types: %w", err)
	}
	if err := rtcv1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add meeting types: %w", err)
	}
	return s, nil
}

// CacheOptions limits the manager's cache to what the operator reads: the
// Meetings, and only those Secrets, Services and Deployments that carry the
// Meeting label (never every Secret of the cluster), without managed fields.
// An empty namespaces list watches every namespace.
func CacheOptions(namespaces ...string) (cache.Options, error) {
	req, err := labels.NewRequirement(rtcv1alpha1.MeetingLabel, selection.Exists, nil)
	if err != nil {
		return cache.Options{}, fmt.Errorf("label selector: %w", err)
	}
	owned := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	opts := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:     owned,
			&corev1.Service{}:    owned,
			&appsv1.Deployment{}: owned,
		},
	}
	if len(namespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return opts, nil
}

// Setup registers a Meeting reconciler with the manager, using its client,
// uncached reader and event recorder, and the given clock. reg receives the
// operator's metrics (controller-runtime's metrics.Registry in the operator).
func Setup(mgr ctrl.Manager, cfg Config, clk clock.WithDelayedExecution, workers int, reg prometheus.Registerer) error {
	r := &MeetingReconciler{
		Metrics:   reg,
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Clock:     clk,
		Recorder:  mgr.GetEventRecorder("meeting-operator"),
		Config:    cfg,
		Workers:   workers,
	}
	return r.SetupWithManager(mgr)
}
