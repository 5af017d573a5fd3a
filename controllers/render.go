package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// Keys and labels of the objects a Meeting owns (the contract with the media
// roles and the REST API).
const (
	// SecretTokenKey holds the HMAC-SHA256 key of the room's join tokens.
	SecretTokenKey = rtcv1alpha1.SecretTokenKey
	// SecretTURNKey holds the room's TURN REST API shared secret.
	SecretTURNKey = rtcv1alpha1.SecretTURNKey
	// HashAnnotation records the hash of the rendered object, so an unchanged
	// object is never written again.
	HashAnnotation = rtcv1alpha1.Group + "/spec-hash"

	componentSFU    = "sfu"
	componentTURN   = "turn"
	componentSecret = "media-secret"
	managedBy       = "meeting-operator"
)

// SecretName, SFUName and TURNName name a Meeting's children.
func SecretName(meeting string) string { return rtcv1alpha1.MediaSecretName(meeting) }

// SFUName names the SFU Deployment and Service of a Meeting.
func SFUName(meeting string) string { return meeting + "-sfu" }

// TURNName names the TURN Deployment and Service of a Meeting.
func TURNName(meeting string) string { return meeting + "-turn" }

// childLabels are the labels of a Meeting's child of the given component.
func childLabels(m *rtcv1alpha1.Meeting, component string) map[string]string {
	return map[string]string{
		rtcv1alpha1.MeetingLabel:       m.Name,
		"app.kubernetes.io/name":       "meeting",
		"app.kubernetes.io/instance":   m.Name,
		"app.kubernetes.io/component":  component,
		"app.kubernetes.io/part-of":    "meeting",
		"app.kubernetes.io/managed-by": managedBy,
	}
}

// selector selects the pods of one component of a Meeting.
func selector(m *rtcv1alpha1.Meeting, component string) map[string]string {
	return map[string]string{
		rtcv1alpha1.MeetingLabel:      m.Name,
		"app.kubernetes.io/component": component,
	}
}

// ownerRef makes the Meeting the controller of a child.
func ownerRef(m *rtcv1alpha1.Meeting) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion:         rtcv1alpha1.GroupVersion.String(),
		Kind:               "Meeting",
		Name:               m.Name,
		UID:                m.UID,
		Controller:         ptr.To(true),
		BlockOwnerDeletion: ptr.To(true),
	}
}

func objectMeta(m *rtcv1alpha1.Meeting, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       m.Namespace,
		Labels:          childLabels(m, component),
		OwnerReferences: []metav1.OwnerReference{ownerRef(m)},
	}
}

// RenderSecret renders the room's Secret holding the given keys.
func RenderSecret(m *rtcv1alpha1.Meeting, tokenKey, turnSecret []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(m, SecretName(m.Name), componentSecret),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{SecretTokenKey: tokenKey, SecretTURNKey: turnSecret},
	}
}

// RenderSFUService renders the SFU's Service: signalling over TCP and the one
// ICE UDP port.
func RenderSFUService(m *rtcv1alpha1.Meeting, cfg Config) *corev1.Service {
	return renderService(m, cfg, SFUName(m.Name), componentSFU,
		namedPort("signal", corev1.ProtocolTCP, SFUSignalPort),
		namedPort("ice", corev1.ProtocolUDP, SFUICEPort))
}

// RenderTURNService renders the TURN server's Service: 3478 over UDP and TCP.
func RenderTURNService(m *rtcv1alpha1.Meeting, cfg Config) *corev1.Service {
	return renderService(m, cfg, TURNName(m.Name), componentTURN,
		namedPort("turn-udp", corev1.ProtocolUDP, TURNPort),
		namedPort("turn-tcp", corev1.ProtocolTCP, TURNPort))
}

// renderService renders the Service of one media component.
func renderService(m *rtcv1alpha1.Meeting, cfg Config, name, component string, ports ...corev1.ServicePort) *corev1.Service {
	return withHash(&corev1.Service{
		ObjectMeta: objectMeta(m, name, component),
		Spec: corev1.ServiceSpec{
			Type:     cfg.ServiceType,
			Selector: selector(m, component),
			Ports:    ports,
		},
	})
}

// namedPort is a Service port that targets the container port of the same name.
func namedPort(name string, proto corev1.Protocol, port int32) corev1.ServicePort {
	return corev1.ServicePort{Name: name, Protocol: proto, Port: port, TargetPort: intstr.FromString(name)}
}

// SFUNetwork is where the SFU listens for ICE and which address it announces;
// it depends on the Service type (see SFUNetworkFor).
type SFUNetwork struct {
	// UDPPort is the SFU's ICE UDP port inside the pod.
	UDPPort int32
	// PublicIP is the address announced in ICE candidates; empty for the pod IP.
	PublicIP string
}

// SFUNetworkFor derives the SFU's ICE port and announced address from its
// Service as the API server allocated it. ok is false while that is not known
// yet (a NodePort not allocated, a load balancer without an address).
func SFUNetworkFor(cfg Config, svc *corev1.Service) (n SFUNetwork, ok bool) {
	switch cfg.ServiceType {
	case corev1.ServiceTypeNodePort:
		// Clients send to node:nodePort, kube-proxy keeps the port: the SFU
		// listens on the node port itself, so what it announces is reachable.
		p := servicePort(svc, "ice")
		if p == nil || p.NodePort == 0 {
			return SFUNetwork{}, false
		}
		ip := ""
		if net.ParseIP(cfg.PublicAddress) != nil {
			ip = cfg.PublicAddress
		}
		return SFUNetwork{UDPPort: p.NodePort, PublicIP: ip}, true
	case corev1.ServiceTypeLoadBalancer:
		addr := lbAddress(svc)
		if addr == "" {
			return SFUNetwork{}, false
		}
		ip := ""
		if net.ParseIP(addr) != nil {
			ip = addr
		}
		return SFUNetwork{UDPPort: SFUICEPort, PublicIP: ip}, true
	default:
		return SFUNetwork{UDPPort: SFUICEPort}, true
	}
}

// RenderSFUDeployment renders the SFU Deployment: one pod running
// `meeting sfu` for this room only.
func RenderSFUDeployment(m *rtcv1alpha1.Meeting, cfg Config, n SFUNetwork) *appsv1.Deployment {
	args := []string{
		"sfu",
		"--http-addr=:" + strconv.Itoa(SFUSignalPort),
		"--udp-port=" + strconv.Itoa(int(n.UDPPort)),
		"--room=" + m.RoomIdentity(),
		"--max-participants=" + strconv.Itoa(int(maxParticipants(m))),
	}
	if n.PublicIP != "" {
		args = append(args, "--public-ip="+n.PublicIP)
	}
	for _, o := range cfg.SFUAllowedOrigins {
		args = append(args, "--allowed-origins="+o)
	}
	c := container(cfg, componentSFU, args, resources(cfg.SFUResources, m.Spec.Media.SFUResources), SFUSignalPort)
	c.Ports = []corev1.ContainerPort{
		{Name: "signal", ContainerPort: SFUSignalPort, Protocol: corev1.ProtocolTCP},
		{Name: "ice", ContainerPort: n.UDPPort, Protocol: corev1.ProtocolUDP},
	}
	c.Env = []corev1.EnvVar{secretEnv("MEETING_TOKEN_KEY", m, SecretTokenKey)}
	return deployment(m, SFUName(m.Name), componentSFU, c)
}

// RenderTURNDeployment renders the TURN Deployment: one pod running
// `meeting turn` with the room's shared secret.
func RenderTURNDeployment(m *rtcv1alpha1.Meeting, cfg Config) *appsv1.Deployment {
	args := []string{
		"turn",
		"--listen=:" + strconv.Itoa(TURNPort),
		"--http-addr=:" + strconv.Itoa(TURNHealthPort),
	}
	for _, p := range cfg.TURNAllowPeers {
		args = append(args, "--allow-peer="+p)
	}
	env := []corev1.EnvVar{secretEnv("MEETING_TURN_SECRET", m, SecretTURNKey)}
	podIP := &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIP"}}
	if cfg.TURNPublicIP != "" {
		// The public address is not on the pod: relay on the pod IP, announce the public one.
		args = append(args, "--relay-ip="+cfg.TURNPublicIP)
		env = append(env, corev1.EnvVar{Name: "MEETING_RELAY_BIND_IP", ValueFrom: podIP})
	} else {
		env = append(env, corev1.EnvVar{Name: "MEETING_RELAY_IP", ValueFrom: podIP})
	}
	c := container(cfg, componentTURN, args, resources(cfg.TURNResources, m.Spec.Media.TURNResources), TURNHealthPort)
	c.Ports = []corev1.ContainerPort{
		{Name: "turn-udp", ContainerPort: TURNPort, Protocol: corev1.ProtocolUDP},
		{Name: "turn-tcp", ContainerPort: TURNPort, Protocol: corev1.ProtocolTCP},
		{Name: "http", ContainerPort: TURNHealthPort, Protocol: corev1.ProtocolTCP},
	}
	c.Env = env
	return deployment(m, TURNName(m.Name), componentTURN, c)
}

func maxParticipants(m *rtcv1alpha1.Meeting) int32 {
	if m.Spec.MaxParticipants > 0 {
		return m.Spec.MaxParticipants
	}
	return 50
}

func secretEnv(name string, m *rtcv1alpha1.Meeting, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: SecretName(m.Name)},
		Key:                  key,
	}}}
}

// resources merges a Meeting's overrides over the operator's defaults.
func resources(def Resources, over rtcv1alpha1.Resources) corev1.ResourceRequirements {
	cpu, mem := def.CPU, def.Memory
	if over.CPU != nil {
		cpu = *over.CPU
	}
	if over.Memory != nil {
		mem = *over.Memory
	}
	r := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	if !cpu.IsZero() {
		r.Requests[corev1.ResourceCPU] = cpu
	}
	if !mem.IsZero() {
		r.Requests[corev1.ResourceMemory] = mem
		r.Limits[corev1.ResourceMemory] = mem
	}
	return r
}

func container(cfg Config, name string, args []string, res corev1.ResourceRequirements, healthPort int32) corev1.Container {
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt32(healthPort)}},
			PeriodSeconds:    period,
			FailureThreshold: 3,
		}
	}
	return corev1.Container{
		Name:            name,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Args:            args,
		Resources:       res,
		ReadinessProbe:  probe("/readyz", 2),
		LivenessProbe:   probe("/healthz", 10),
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}
}

func deployment(m *rtcv1alpha1.Meeting, name, component string, c corev1.Container) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: objectMeta(m, name, component),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: selector(m, component)},
			// One media server per room: never two side by side.
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: childLabels(m, component)},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{c},
					AutomountServiceAccountToken:  ptr.To(false),
					EnableServiceLinks:            ptr.To(false),
					TerminationGracePeriodSeconds: ptr.To[int64](40),
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						RunAsUser:      ptr.To[int64](65532),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
				},
			},
		},
	}
	return withHash(d)
}

// Endpoints returns the SFU signalling URL and TURN URIs clients use, from the
// Services as the API server allocated them; ok is false while an address or
// port is not known yet. turn is nil for a meeting without TURN.
func Endpoints(m *rtcv1alpha1.Meeting, cfg Config, sfu, turn *corev1.Service) (signalURL string, turnURIs []string, ok bool) {
	host, port, ok := reach(cfg, sfu, "signal", SFUSignalPort)
	if !ok {
		return "", nil, false
	}
	signalURL = fmt.Sprintf("ws://%s/ws", net.JoinHostPort(host, strconv.Itoa(int(port))))
	if turn == nil {
		return signalURL, nil, true
	}
	for _, t := range []struct{ port, transport string }{{"turn-udp", "udp"}, {"turn-tcp", "tcp"}} {
		host, port, ok := reach(cfg, turn, t.port, TURNPort)
		if !ok {
			return "", nil, false
		}
		turnURIs = append(turnURIs, fmt.Sprintf("turn:%s?transport=%s", net.JoinHostPort(host, strconv.Itoa(int(port))), t.transport))
	}
	return signalURL, turnURIs, true
}

// reach is the host and port clients use for one port of a Service.
func reach(cfg Config, svc *corev1.Service, portName string, port int32) (string, int32, bool) {
	if svc == nil {
		return "", 0, false
	}
	switch cfg.ServiceType {
	case corev1.ServiceTypeNodePort:
		p := servicePort(svc, portName)
		if p == nil || p.NodePort == 0 {
			return "", 0, false
		}
		return cfg.PublicAddress, p.NodePort, true
	case corev1.ServiceTypeLoadBalancer:
		addr := lbAddress(svc)
		return addr, port, addr != ""
	default:
		return fmt.Sprintf("%s.%s.svc", svc.Name, svc.Namespace), port, true
	}
}

func servicePort(svc *corev1.Service, name string) *corev1.ServicePort {
	if svc == nil {
		return nil
	}
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == name {
			return &svc.Spec.Ports[i]
		}
	}
	return nil
}

func lbAddress(svc *corev1.Service) string {
	if svc == nil {
		return ""
	}
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			return in.IP
		}
		if in.Hostname != "" {
			return in.Hostname
		}
	}
	return ""
}

// hashed is an object whose rendered form is hashed into HashAnnotation.
type hashed interface {
	GetAnnotations() map[string]string
	SetAnnotations(map[string]string)
}

// withHash records the hash of the rendered object (labels, owner and spec)
// in HashAnnotation: the updater writes only when it differs.
func withHash[T hashed](obj T) T {
	b, err := json.Marshal(obj)
	if err != nil {
		// Rendered objects are plain structs: marshalling cannot fail.
		b = []byte(fmt.Sprintf("%#v", obj))
	}
	sum := sha256.Sum256(b)
	a := map[string]string{}
	for k, v := range obj.GetAnnotations() {
		a[k] = v
	}
	a[HashAnnotation] = hex.EncodeToString(sum[:16])
	obj.SetAnnotations(a)
	return obj
}
