package controllers_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
)

// Benchmark shape: 1,000 Meetings whose media falls due 10 a second for 100
// seconds (begin times are whole seconds, as the API stores them).
const (
	benchMeetings  = 1000
	benchPerSecond = 10
	benchLead      = time.Minute
)

// BenchmarkScheduleLag runs the built `meeting operator` binary in its own
// process against the test control plane, creates 1,000 Meetings with
// staggered begin times and measures, for each, how long after beginAt − lead
// its two Deployments were observed. It reports p50/p99 of that lag, the
// operator's reconciles per second and its peak RSS. Run it with
// -benchtime=1x (hack/bench.sh does); every iteration is a full run.
func BenchmarkScheduleLag(b *testing.B) {
	bin := buildOperator(b)
	for i := 0; i < b.N; i++ {
		runScheduleBench(b, bin)
	}
}

func runScheduleBench(b *testing.B, bin string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	cfg := rest.CopyConfig(shared.env.Config)
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(cfg, client.Options{Scheme: shared.scheme})
	if err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ns := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if _, err := cs.CoreV1().Namespaces().Create(ctx, nsObject(ns), metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}

	// Observe Deployments as they appear.
	var mu sync.Mutex
	seen := map[string][]time.Time{}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Apps().V1().Deployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			return
		}
		mu.Lock()
		seen[d.Labels[rtcv1alpha1.MeetingLabel]] = append(seen[d.Labels[rtcv1alpha1.MeetingLabel]], time.Now())
		mu.Unlock()
	}}); err != nil {
		b.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())

	op := startOperator(b, bin, ns)
	defer op.stop(b)

	// Create the Meetings; the first falls due 30 s from now.
	first := time.Now().Add(30 * time.Second).Truncate(time.Second).Add(time.Second)
	due := make(map[string]time.Time, benchMeetings)
	type job struct {
		name  string
		begin time.Time
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	errs := make(chan error, benchMeetings)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				m := newMeeting(ns, j.name, j.begin, j.begin.Add(time.Hour))
				if err := c.Create(ctx, m); err != nil {
					errs <- err
				}
			}
		}()
	}
	createStart := time.Now()
	before := op.reconciles(b)
	for i := 0; i < benchMeetings; i++ {
		dueAt := first.Add(time.Duration(i/benchPerSecond) * time.Second)
		name := fmt.Sprintf("m%04d", i)
		due[name] = dueAt
		jobs <- job{name: name, begin: dueAt.Add(benchLead)}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatalf("create meeting: %v", err)
	}
	created := time.Since(createStart)
	if time.Now().After(first) {
		b.Fatalf("creating %d meetings took %s, past the first due time", benchMeetings, created)
	}
	// Wait until the operator has scheduled them all (status Scheduled).
	waitUntil(b, first, "all meetings scheduled", func() error {
		var l rtcv1alpha1.MeetingList
		if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return err
		}
		n := 0
		for _, m := range l.Items {
			if m.Status.Phase == rtcv1alpha1.PhaseScheduled {
				n++
			}
		}
		if n != benchMeetings {
			return fmt.Errorf("%d of %d scheduled", n, benchMeetings)
		}
		return nil
	})
	burst := time.Since(createStart)
	burstReconciles := op.reconciles(b) - before

	// The due window.
	last := first.Add(time.Duration((benchMeetings-1)/benchPerSecond) * time.Second)
	winStart := time.Now()
	winBefore := op.reconciles(b)
	waitUntil(b, last.Add(60*time.Second), "every meeting's deployments", func() error {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ts := range seen {
			if len(ts) >= 2 {
				n++
			}
		}
		if n < benchMeetings {
			return fmt.Errorf("%d of %d meetings have both deployments", n, benchMeetings)
		}
		return nil
	})
	winDur := time.Since(winStart)
	winReconciles := op.reconciles(b) - winBefore
	rss := op.peakRSS(b)

	mu.Lock()
	lags := make([]time.Duration, 0, benchMeetings)
	for name, at := range due {
		ts := seen[name]
		lags = append(lags, slices.MaxFunc(ts, time.Time.Compare).Sub(at))
	}
	mu.Unlock()
	slices.Sort(lags)
	p := func(q float64) time.Duration { return lags[int(q*float64(len(lags)-1))] }

	b.ReportMetric(float64(p(0.50).Microseconds())/1000, "p50-lag-ms")
	b.ReportMetric(float64(p(0.99).Microseconds())/1000, "p99-lag-ms")
	b.ReportMetric(float64(lags[len(lags)-1].Microseconds())/1000, "max-lag-ms")
	b.ReportMetric(float64(winReconciles)/winDur.Seconds(), "reconciles/s")
	b.ReportMetric(float64(burstReconciles)/burst.Seconds(), "burst-reconciles/s")
	b.ReportMetric(float64(rss)/(1<<20), "peak-RSS-MiB")
	fmt.Printf("schedule lag over %d meetings (%d due per second): p50 %s, p99 %s, max %s (min %s)\n",
		benchMeetings, benchPerSecond, p(0.50), p(0.99), lags[len(lags)-1], lags[0])
	fmt.Printf("creation burst: %d meetings created in %s, all Scheduled after %s: %d reconciles, %.0f reconciles/s\n",
		benchMeetings, created.Round(time.Millisecond), burst.Round(time.Millisecond), burstReconciles, float64(burstReconciles)/burst.Seconds())
	fmt.Printf("due window: %d reconciles in %s, %.1f reconciles/s\n", winReconciles, winDur.Round(time.Millisecond), float64(winReconciles)/winDur.Seconds())
	if n, sum := op.histogram(b, "meeting_media_start_lag_seconds"); n > 0 {
		fmt.Printf("operator's own meeting_media_start_lag_seconds: %d starts, mean %s\n", int(n), time.Duration(sum/n*float64(time.Second)).Round(time.Microsecond))
	}
	fmt.Printf("operator peak RSS (VmHWM): %.1f MiB\n", float64(rss)/(1<<20))
	fmt.Printf("targets: p99 <= 1s: %v; peak RSS <= 150 MiB: %v\n", p(0.99) <= time.Second, rss <= 150<<20)
}

// buildOperator builds the meeting binary (or takes $MEETING_BIN).
func buildOperator(b testing.TB) string {
	b.Helper()
	if bin := os.Getenv("MEETING_BIN"); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "meeting")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/meeting")
	cmd.Dir = shared.env.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build meeting: %v\n%s", err, out)
	}
	return bin
}

type operatorProc struct {
	cmd     *exec.Cmd
	metrics string
	done    chan error
}

func startOperator(b *testing.B, bin, ns string) *operatorProc {
	b.Helper()
	port, health := freePort(b), freePort(b)
	cmd := exec.Command(bin, "operator",
		"--kubeconfig", shared.env.Kubeconfig,
		"--namespace", ns,
		"--lead-time", benchLead.String(),
		"--end-grace", "1m",
		"--image", "meeting:bench",
		"--metrics-addr", "127.0.0.1:"+strconv.Itoa(port),
		"--health-addr", "127.0.0.1:"+strconv.Itoa(health),
		"--leader-elect", "--leader-election-namespace", ns,
		"--log-level", "warn",
	)
	logf, err := os.CreateTemp("", "meeting-bench-operator-*.log")
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("operator log: %s\n", logf.Name())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatalf("start operator: %v", err)
	}
	op := &operatorProc{cmd: cmd, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port), done: make(chan error, 1)}
	go func() { op.done <- cmd.Wait(); logf.Close() }()
	waitUntil(b, time.Now().Add(30*time.Second), "operator metrics", func() error {
		select {
		case err := <-op.done:
			b.Fatalf("operator exited: %v (log %s)", err, logf.Name())
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		_, err = op.scrape()
		return err
	})
	return op
}

func (op *operatorProc) stop(b *testing.B) {
	_ = op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-op.done:
		if err != nil {
			b.Errorf("operator exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = op.cmd.Process.Kill()
		b.Error("operator ignored SIGTERM")
	}
}

func (op *operatorProc) scrape() (string, error) {
	resp, err := http.Get(op.metrics)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metrics: %s", resp.Status)
	}
	return string(body), nil
}

// reconciles is the operator's controller_runtime_reconcile_total of the
// meeting controller, over every result.
func (op *operatorProc) reconciles(b *testing.B) int {
	b.Helper()
	body, err := op.scrape()
	if err != nil {
		b.Fatal(err)
	}
	total := 0
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "controller_runtime_reconcile_total{") || !strings.Contains(line, `controller="meeting"`) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			b.Fatalf("metric line %q: %v", line, err)
		}
		total += int(v)
	}
	return total
}

// histogram returns the count and sum of one of the operator's histograms.
func (op *operatorProc) histogram(b *testing.B, name string) (count, sum float64) {
	b.Helper()
	body, err := op.scrape()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case name + "_count":
			count = v
		case name + "_sum":
			sum = v
		}
	}
	return count, sum
}

// peakRSS is the operator process's peak resident set (VmHWM).
func (op *operatorProc) peakRSS(b *testing.B) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", op.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}

func freePort(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitUntil(b *testing.B, deadline time.Time, what string, f func() error) {
	b.Helper()
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("%s: %v", what, err)
}
