package controllers_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/controllers"
)

// TestRenderedPodsStart runs the containers the operator renders, as a
// kubelet would, with the real `meeting` binary: the rendered arguments and
// environment (the Secret's keys, the pod IP) must be accepted by the sfu and
// turn roles, and their readiness probes must pass. Only the listen addresses
// are moved to random loopback ports.
func TestRenderedPodsStart(t *testing.T) {
	bin := buildOperator(t)
	m := &rtcv1alpha1.Meeting{
		ObjectMeta: metav1.ObjectMeta{Name: "pods", Namespace: "ns", UID: "uid-7"},
		Spec:       rtcv1alpha1.MeetingSpec{Identity: "room-7", Title: "t", Creator: "alice", MaxParticipants: 4},
	}
	secret := controllers.RenderSecret(m, []byte(hex.EncodeToString(make([]byte, 32))), []byte(strings.Repeat("ab", 32)))
	cfg := testConfig()

	for _, tt := range []struct {
		name      string
		container corev1.Container
		listen    func(http, udp int) []string
	}{
		{"sfu", controllers.RenderSFUDeployment(m, cfg, controllers.SFUNetwork{UDPPort: controllers.SFUICEPort}).Spec.Template.Spec.Containers[0],
			func(h, u int) []string {
				return []string{"--http-addr=127.0.0.1:" + strconv.Itoa(h), "--udp-ip=127.0.0.1", "--udp-port=" + strconv.Itoa(u)}
			}},
		{"turn", controllers.RenderTURNDeployment(m, cfg).Spec.Template.Spec.Containers[0],
			func(h, u int) []string {
				return []string{"--http-addr=127.0.0.1:" + strconv.Itoa(h), "--listen=127.0.0.1:" + strconv.Itoa(u)}
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.container
			probe := c.ReadinessProbe.HTTPGet
			if !slices.Contains(c.Args, fmt.Sprintf("--http-addr=:%d", probe.Port.IntValue())) {
				t.Fatalf("readiness probe port %s is not the --http-addr of %v", probe.Port.String(), c.Args)
			}
			env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
			for _, e := range c.Env {
				switch {
				case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
					if e.ValueFrom.SecretKeyRef.Name != secret.Name {
						t.Fatalf("env %s from Secret %s, want %s", e.Name, e.ValueFrom.SecretKeyRef.Name, secret.Name)
					}
					v, ok := secret.Data[e.ValueFrom.SecretKeyRef.Key]
					if !ok {
						t.Fatalf("env %s: Secret has no key %s", e.Name, e.ValueFrom.SecretKeyRef.Key)
					}
					env = append(env, e.Name+"="+string(v))
				case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
					env = append(env, e.Name+"=127.0.0.1")
				case e.ValueFrom == nil:
					env = append(env, e.Name+"="+e.Value)
				default:
					t.Fatalf("env %s: unsupported source %+v", e.Name, e.ValueFrom)
				}
			}
			httpPort, udpPort := freeTCPPort(t), freeUDPPort(t)
			args := append(append([]string{}, c.Args...), tt.listen(httpPort, udpPort)...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Env = env
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			url := fmt.Sprintf("http://127.0.0.1:%d%s", httpPort, probe.Path)
			eventually(t, "readiness probe "+url, func() error {
				select {
				case err := <-done:
					t.Fatalf("meeting %s exited: %v\n%s", tt.name, err, out.String())
				default:
				}
				resp, err := http.Get(url)
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("%s", resp.Status)
				}
				return nil
			})
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("meeting %s after SIGTERM: %v\n%s", tt.name, err, out.String())
				}
			case <-time.After(45 * time.Second):
				t.Errorf("meeting %s ignored SIGTERM", tt.name)
			}
		})
	}
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}
