// Package controllers holds the Meeting reconciler: it brings up a room's SFU
// and TURN server (Deployments, Services and a Secret, all owned by the
// Meeting) for the meeting's time window, and reports what it did in status.
package controllers

import (
	"errors"
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Ports the media roles listen on inside their pods (the contract with
// `meeting sfu` and `meeting turn`).
const (
	SFUSignalPort  = 7880
	SFUICEPort     = 7882
	TURNPort       = 3478
	TURNHealthPort = 9641
)

// Config is the operator's configuration of every room it runs.
type Config struct {
	// LeadTime is how long before beginAt the media comes up.
	LeadTime time.Duration
	// EndGrace is how long after endAt the media stays up.
	EndGrace time.Duration
	// Image runs every media pod (`meeting sfu`, `meeting turn`); its
	// entrypoint is the meeting binary.
	Image string
	// ImagePullPolicy of the media containers.
	ImagePullPolicy corev1.PullPolicy
	// ServiceType of the SFU and TURN Services.
	ServiceType corev1.ServiceType
	// PublicAddress is the node address clients reach NodePort Services on;
	// required for NodePort, where it is also the SFU's announced ICE address.
	PublicAddress string
	// TURNPublicIP is the address of TURN relay candidates; when empty each
	// TURN pod announces its pod IP.
	TURNPublicIP string
	// SFUAllowedOrigins are the Origin values the SFUs accept on their
	// signalling WebSocket: the web client's origin (default same-origin only).
	SFUAllowedOrigins []string
	// TURNAllowPeers are CIDRs or IPs the TURN servers may relay to although
	// their default policy refuses private ranges: in a cluster, the pod
	// network, so that relayed clients reach the SFU pods.
	TURNAllowPeers []string
	// SFUResources and TURNResources are the default requests (memory also
	// the limit) of the media containers; a Meeting may override them.
	SFUResources  Resources
	TURNResources Resources
}

// Resources are CPU and memory requests; memory is also the limit.
type Resources struct {
	CPU    resource.Quantity
	Memory resource.Quantity
}

// DefaultConfig returns the operator's defaults.
func DefaultConfig() Config {
	return Config{
		LeadTime:        time.Minute,
		EndGrace:        time.Minute,
		Image:           "meeting:latest",
		ImagePullPolicy: corev1.PullIfNotPresent,
		ServiceType:     corev1.ServiceTypeClusterIP,
		SFUResources:    Resources{CPU: resource.MustParse("250m"), Memory: resource.MustParse("256Mi")},
		TURNResources:   Resources{CPU: resource.MustParse("100m"), Memory: resource.MustParse("64Mi")},
	}
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.LeadTime < 0 {
		errs = append(errs, fmt.Errorf("lead time %s is negative", c.LeadTime))
	}
	if c.EndGrace < 0 {
		errs = append(errs, fmt.Errorf("end grace %s is negative", c.EndGrace))
	}
	if c.Image == "" {
		errs = append(errs, errors.New("image is empty"))
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		errs = append(errs, fmt.Errorf("image pull policy %q: want Always, IfNotPresent or Never", c.ImagePullPolicy))
	}
	switch c.ServiceType {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeLoadBalancer:
	case corev1.ServiceTypeNodePort:
		if c.PublicAddress == "" {
			errs = append(errs, errors.New("service type NodePort needs a public address (the nodes' address clients reach)"))
		}
	default:
		errs = append(errs, fmt.Errorf("service type %q: want ClusterIP, NodePort or LoadBalancer", c.ServiceType))
	}
	if c.TURNPublicIP != "" && net.ParseIP(c.TURNPublicIP) == nil {
		errs = append(errs, fmt.Errorf("TURN public IP %q is not an IP address", c.TURNPublicIP))
	}
	for _, p := range c.TURNAllowPeers {
		if _, _, err := net.ParseCIDR(p); err != nil && net.ParseIP(p) == nil {
			errs = append(errs, fmt.Errorf("TURN allowed peer %q is neither a CIDR nor an IP address", p))
		}
	}
	for name, r := range map[string]Resources{"SFU": c.SFUResources, "TURN": c.TURNResources} {
		if r.CPU.Sign() < 0 || r.Memory.Sign() < 0 {
			errs = append(errs, fmt.Errorf("%s resources must not be negative", name))
		}
	}
	return errors.Join(errs...)
}
