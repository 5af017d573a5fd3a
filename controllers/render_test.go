package controllers

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

func testMeeting() *rtcv1alpha1.Meeting {
	return &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "ns", UID: "uid-1"},
		Spec:       rtcv1alpha1.MeetingSpec{Title: "t", Creator: "c", MaxParticipants: 12},
	}
}

func svcWith(name string, typ corev1.ServiceType, nodePorts map[string]int32, lb string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"}, Spec: corev1.ServiceSpec{Type: typ}}
	for n, p := range nodePorts {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Name: n, NodePort: p})
	}
	if lb != "" {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lb}}
	}
	return s
}

func TestEndpoints(t *testing.T) {
	m := testMeeting()
	cluster := DefaultConfig()
	nodePort := DefaultConfig()
	nodePort.ServiceType, nodePort.PublicAddress = corev1.ServiceTypeNodePort, "192.0.2.7"
	lb := DefaultConfig()
	lb.ServiceType = corev1.ServiceTypeLoadBalancer

	tests := []struct {
		name      string
		cfg       Config
		sfu, turn *corev1.Service
		wantOK    bool
		wantURL   string
		wantTURN  []string
	}{
		{"cluster IP", cluster, svcWith("m-sfu", "", nil, ""), svcWith("m-turn", "", nil, ""), true,
			"ws://m-sfu.ns.svc:7880/ws", []string{"turn:m-turn.ns.svc:3478?transport=udp", "turn:m-turn.ns.svc:3478?transport=tcp"}},
		{"cluster IP without TURN", cluster, svcWith("m-sfu", "", nil, ""), nil, true, "ws://m-sfu.ns.svc:7880/ws", nil},
		{"no SFU service yet", cluster, nil, nil, false, "", nil},
		{"node port", nodePort,
			svcWith("m-sfu", corev1.ServiceTypeNodePort, map[string]int32{"signal": 30080, "ice": 30082}, ""),
			svcWith("m-turn", corev1.ServiceTypeNodePort, map[string]int32{"turn-udp": 31478, "turn-tcp": 31479}, ""), true,
			"ws://192.0.2.7:30080/ws", []string{"turn:192.0.2.7:31478?transport=udp", "turn:192.0.2.7:31479?transport=tcp"}},
		{"node port not allocated", nodePort,
			svcWith("m-sfu", corev1.ServiceTypeNodePort, map[string]int32{"signal": 0}, ""), nil, false, "", nil},
		{"load balancer", lb,
			svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, "198.51.100.1"),
			svcWith("m-turn", corev1.ServiceTypeLoadBalancer, nil, "198.51.100.2"), true,
			"ws://198.51.100.1:7880/ws", []string{"turn:198.51.100.2:3478?transport=udp", "turn:198.51.100.2:3478?transport=tcp"}},
		{"load balancer pending", lb,
			svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, "198.51.100.1"),
			svcWith("m-turn", corev1.ServiceTypeLoadBalancer, nil, ""), false, "", nil},
		{"IPv6 load balancer", lb, svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, "2001:db8::1"), nil, true, "ws://[2001:db8::1]:7880/ws", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url, turn, ok := Endpoints(m, tt.cfg, tt.sfu, tt.turn)
			if ok != tt.wantOK || url != tt.wantURL || !slices.Equal(turn, tt.wantTURN) {
				t.Errorf("got %q %v %v, want %q %v %v", url, turn, ok, tt.wantURL, tt.wantTURN, tt.wantOK)
			}
		})
	}
}

func TestSFUNetworkFor(t *testing.T) {
	nodePort := DefaultConfig()
	nodePort.ServiceType, nodePort.PublicAddress = corev1.ServiceTypeNodePort, "192.0.2.7"
	nodePortName := nodePort
	nodePortName.PublicAddress = "nodes.example"
	lb := DefaultConfig()
	lb.ServiceType = corev1.ServiceTypeLoadBalancer
	tests := []struct {
		name   string
		cfg    Config
		svc    *corev1.Service
		want   SFUNetwork
		wantOK bool
	}{
		{"cluster IP: pod IP, default port", DefaultConfig(), nil, SFUNetwork{UDPPort: SFUICEPort}, true},
		{"node port: listen on the node port, announce the node", nodePort,
			svcWith("m-sfu", corev1.ServiceTypeNodePort, map[string]int32{"ice": 30082}, ""), SFUNetwork{UDPPort: 30082, PublicIP: "192.0.2.7"}, true},
		{"node port: a host name is not announced", nodePortName,
			svcWith("m-sfu", corev1.ServiceTypeNodePort, map[string]int32{"ice": 30082}, ""), SFUNetwork{UDPPort: 30082}, true},
		{"node port not allocated", nodePort, svcWith("m-sfu", corev1.ServiceTypeNodePort, nil, ""), SFUNetwork{}, false},
		{"load balancer", lb, svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, "198.51.100.1"), SFUNetwork{UDPPort: SFUICEPort, PublicIP: "198.51.100.1"}, true},
		{"load balancer pending", lb, svcWith("m-sfu", corev1.ServiceTypeLoadBalancer, nil, ""), SFUNetwork{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SFUNetworkFor(tt.cfg, tt.svc)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestRenderDeployments(t *testing.T) {
	m := testMeeting()
	cfg := DefaultConfig()
	cfg.Image = "registry.test/meeting:v1"

	d := RenderSFUDeployment(m, cfg, SFUNetwork{UDPPort: 30082, PublicIP: "192.0.2.7"})
	c := d.Spec.Template.Spec.Containers[0]
	for _, a := range []string{"--room=uid-1", "--udp-port=30082", "--public-ip=192.0.2.7", "--max-participants=12"} {
		if !slices.Contains(c.Args, a) {
			t.Errorf("SFU args %v lack %s", c.Args, a)
		}
	}
	if slices.ContainsFunc(c.Args, hasPrefix("--allowed-origins")) {
		t.Errorf("origins passed without being configured: %v", c.Args)
	}
	withOrigins := cfg
	withOrigins.SFUAllowedOrigins = []string{"https://meet.example.org", "http://localhost:8080"}
	args := RenderSFUDeployment(m, withOrigins, SFUNetwork{UDPPort: SFUICEPort}).Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--allowed-origins=https://meet.example.org") || !slices.Contains(args, "--allowed-origins=http://localhost:8080") {
		t.Errorf("SFU origins not passed: %v", args)
	}
	if c.Ports[1].ContainerPort != 30082 || c.Ports[1].Protocol != corev1.ProtocolUDP {
		t.Errorf("ICE container port %+v", c.Ports[1])
	}
	if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("250m")) != 0 {
		t.Errorf("default CPU request %s", got.String())
	}

	// Overrides from the Meeting win over the defaults; memory is also the limit.
	cpu, mem := resource.MustParse("1"), resource.MustParse("1Gi")
	m.Spec.Media.SFUResources = rtcv1alpha1.Resources{CPU: &cpu, Memory: &mem}
	c = RenderSFUDeployment(m, cfg, SFUNetwork{UDPPort: SFUICEPort}).Spec.Template.Spec.Containers[0]
	if r := c.Resources; r.Requests.Cpu().Cmp(cpu) != 0 || r.Requests.Memory().Cmp(mem) != 0 || r.Limits.Memory().Cmp(mem) != 0 {
		t.Errorf("resources %+v", r)
	}
	if slices.ContainsFunc(c.Args, func(a string) bool { return a == "--public-ip=" }) {
		t.Errorf("empty public IP passed: %v", c.Args)
	}

	// TURN: pod IP by default; a public IP is announced, the pod IP bound.
	turn := RenderTURNDeployment(m, cfg).Spec.Template.Spec.Containers[0]
	if envFrom(turn, "MEETING_RELAY_IP") != "status.podIP" || slices.ContainsFunc(turn.Args, hasPrefix("--relay-ip")) {
		t.Errorf("TURN without public IP: args %v env %+v", turn.Args, turn.Env)
	}
	cfg.TURNPublicIP = "203.0.113.9"
	cfg.TURNAllowPeers = []string{"10.244.0.0/16", "fd00::/8"}
	turn = RenderTURNDeployment(m, cfg).Spec.Template.Spec.Containers[0]
	if !slices.Contains(turn.Args, "--allow-peer=10.244.0.0/16") || !slices.Contains(turn.Args, "--allow-peer=fd00::/8") {
		t.Errorf("TURN allowed peers not passed: %v", turn.Args)
	}
	if !slices.Contains(turn.Args, "--relay-ip=203.0.113.9") || envFrom(turn, "MEETING_RELAY_BIND_IP") != "status.podIP" || envFrom(turn, "MEETING_RELAY_IP") != "" {
		t.Errorf("TURN with public IP: args %v env %+v", turn.Args, turn.Env)
	}
}

// TestRenderStable: rendering is a pure function of its inputs, so the hash
// (what decides whether anything is written) is stable, and changes with a
// change that matters but not with the meeting's times.
func TestRenderStable(t *testing.T) {
	m := testMeeting()
	cfg := DefaultConfig()
	h := func(m *rtcv1alpha1.Meeting, cfg Config) string {
		return RenderSFUDeployment(m, cfg, SFUNetwork{UDPPort: SFUICEPort}).Annotations[HashAnnotation]
	}
	first := h(m, cfg)
	if first == "" || first != h(m, cfg) {
		t.Fatal("hash missing or unstable")
	}
	later := m.DeepCopy()
	later.Spec.EndAt = metav1.Now()
	later.Spec.BeginAt = metav1.Now()
	if h(later, cfg) != first {
		t.Error("editing the times changes the SFU Deployment: extending a meeting would restart its media")
	}
	other := cfg
	other.Image = "meeting:v2"
	if h(m, other) == first {
		t.Error("a new image does not change the hash")
	}
	if RenderSFUService(m, cfg).Annotations[HashAnnotation] == RenderTURNService(m, cfg).Annotations[HashAnnotation] {
		t.Error("different services hash alike")
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, edit := range map[string]func(*Config){
		"negative lead":      func(c *Config) { c.LeadTime = -1 },
		"negative grace":     func(c *Config) { c.EndGrace = -1 },
		"no image":           func(c *Config) { c.Image = "" },
		"bad pull policy":    func(c *Config) { c.ImagePullPolicy = "Sometimes" },
		"bad service type":   func(c *Config) { c.ServiceType = "ExternalName" },
		"node port, no addr": func(c *Config) { c.ServiceType = corev1.ServiceTypeNodePort },
		"TURN IP not an IP":  func(c *Config) { c.TURNPublicIP = "turn.example" },
		"bad allowed peer":   func(c *Config) { c.TURNAllowPeers = []string{"10.0.0.0/33"} },
		"negative memory":    func(c *Config) { c.SFUResources.Memory = resource.MustParse("-1Mi") },
	} {
		c := DefaultConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func envFrom(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

func hasPrefix(p string) func(string) bool {
	return func(s string) bool { return len(s) >= len(p) && s[:len(p)] == p }
}
