package e2e

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // database/sql driver of the row poller
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	rtcv1alpha1 "meeting.dev/meeting/api/v1alpha1"
	"meeting.dev/meeting/internal/store"
	"meeting.dev/meeting/internal/store/storetest"
	mclient "meeting.dev/meeting/media/client"
)

// BenchmarkSyncLag measures the sync's lag with `meeting api` (the built
// binary, its own process) on MariaDB and an envtest API server: N REST
// creates at 10/s, each timed from the request to the Meeting's ADDED
// event in a watch; then N Meetings created on the API server (as kubectl
// does) at 10/s, each timed from the create to its row in MySQL (a poller
// of room_basic every 5 ms). It reports p50/p99 of both and the API's
// memory (Go heap in use and RSS from its /metrics, peak RSS from /proc).
// Target: p99 ≤ 1 s. SYNC_BENCH_N sets N (default 1000).
func BenchmarkSyncLag(b *testing.B) {
	n := 1000
	if v := os.Getenv("SYNC_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("SYNC_BENCH_N=%q", v)
		}
	}
	const rate = 10 // creates per second, each way
	c := startCluster(b)
	ctx := context.Background()
	ns := randomName("bench-")
	c.kubectlOK(b, "", "create", "namespace", ns)
	dbURL := storetest.NewDatabaseURL(b)
	api, base := startSyncingAPI(b, c, dbURL, ns)
	root, err := mclient.Login(ctx, base, "root", "first-admin-pw")
	if err != nil {
		b.Fatal(err)
	}

	// REST create → Meeting exists.
	wc, err := client.NewWithWatch(c.env.Config, client.Options{Scheme: c.client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	w, err := wc.Watch(wctx, &rtcv1alpha1.MeetingList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	seen := newArrivals()
	go func() {
		for ev := range w.ResultChan() {
			if m, ok := ev.Object.(*rtcv1alpha1.Meeting); ok && ev.Type == watch.Added {
				seen.arrive(m.Spec.Identity)
			}
		}
	}()
	begin := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	b.ResetTimer()
	restLags := pace(b, n, rate, seen, func(i int) string {
		id := fmt.Sprintf("rest-%04d", i)
		raw(b, root).call("POST", "/auth/meeting/create", map[string]any{"identity": id, "name": id,
			"begin_at": begin.UnixMilli(), "end_at": begin.Add(time.Hour).UnixMilli()}, 200, nil)
		return id
	})
	stopWatch()

	// kubectl-style create → row exists.
	db, err := openRows(dbURL)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	rows := newArrivals()
	pctx, stopPoll := context.WithCancel(ctx)
	defer stopPoll()
	go pollRows(pctx, b, db, rows)
	kubeLags := pace(b, n, rate, rows, func(i int) string {
		id := fmt.Sprintf("kube-%04d", i)
		m := &rtcv1alpha1.Meeting{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: id},
			Spec: rtcv1alpha1.MeetingSpec{Identity: id, Title: id, Creator: "root",
				BeginAt: metav1.NewTime(begin), EndAt: metav1.NewTime(begin.Add(time.Hour))}}
		if err := c.client.Create(ctx, m); err != nil {
			b.Errorf("create Meeting %s: %v", id, err)
		}
		return id
	})
	stopPoll()
	b.StopTimer()

	heap, rss := apiMemory(b, base)
	peak := peakRSS(b, api.cmd.Process.Pid)
	rp50, rp99 := percentile(restLags, 0.50), percentile(restLags, 0.99)
	kp50, kp99 := percentile(kubeLags, 0.50), percentile(kubeLags, 0.99)
	fmt.Printf("sync: %d REST creates at %d/s → Meeting exists: p50 %s p99 %s max %s\n", n, rate, rp50, rp99, restLags[len(restLags)-1])
	fmt.Printf("sync: %d kubectl-style creates at %d/s → row exists: p50 %s p99 %s max %s\n", n, rate, kp50, kp99, kubeLags[len(kubeLags)-1])
	fmt.Printf("sync: meeting api memory after %d meetings: Go heap in use %.1f MiB, RSS %.1f MiB, peak RSS %.1f MiB\n",
		2*n, heap/(1<<20), rss/(1<<20), peak/(1<<20))
	fmt.Printf("sync: target p99 ≤ 1s: REST→cluster %v, cluster→REST %v\n", rp99 <= time.Second, kp99 <= time.Second)
	b.ReportMetric(ms(rp50), "rest-to-cluster-p50-ms")
	b.ReportMetric(ms(rp99), "rest-to-cluster-p99-ms")
	b.ReportMetric(ms(kp50), "cluster-to-rest-p50-ms")
	b.ReportMetric(ms(kp99), "cluster-to-rest-p99-ms")
	b.ReportMetric(heap/(1<<20), "api-heap-MiB")
	b.ReportMetric(rss/(1<<20), "api-RSS-MiB")
	b.ReportMetric(peak/(1<<20), "api-peak-RSS-MiB")
	api.stop(b)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// arrivals records when each identity was first seen.
type arrivals struct {
	mu   gosync.Mutex
	at   map[string]time.Time
	wake chan struct{}
}

func newArrivals() *arrivals {
	return &arrivals{at: map[string]time.Time{}, wake: make(chan struct{}, 1)}
}

func (a *arrivals) arrive(id string) {
	a.mu.Lock()
	if _, ok := a.at[id]; !ok {
		a.at[id] = time.Now()
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *arrivals) get(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.at[id]
	return t, ok
}

// pace calls create(i) for i < n at rate per second, each in its own
// goroutine so that a slow call does not delay the schedule, then waits for
// every identity to arrive and returns the lags (arrival - call start), sorted.
func pace(b *testing.B, n, rate int, seen *arrivals, create func(i int) string) []time.Duration {
	b.Helper()
	starts := make([]time.Time, n)
	ids := make([]string, n)
	var wg gosync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := range n {
		if i > 0 {
			<-tick.C
		}
		wg.Add(1)
		starts[i] = time.Now()
		go func() { defer wg.Done(); ids[i] = create(i) }()
	}
	wg.Wait()
	var lags []time.Duration
	deadline := time.Now().Add(2 * time.Minute)
	for i := range n {
		for {
			if at, ok := seen.get(ids[i]); ok {
				lags = append(lags, at.Sub(starts[i]))
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("%s never arrived", ids[i])
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	slices.Sort(lags)
	return lags
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

func openRows(dbURL string) (*sql.DB, error) {
	dsn, err := store.MySQLDSN(dbURL)
	if err != nil {
		return nil, err
	}
	return sql.Open("mysql", dsn)
}

// pollRows records each new room_basic row's identity, every 5 ms.
func pollRows(ctx context.Context, b *testing.B, db *sql.DB, seen *arrivals) {
	var last uint64
	for ctx.Err() == nil {
		rows, err := db.QueryContext(ctx, "SELECT id, identity FROM room_basic WHERE id > ? ORDER BY id", last)
		if err != nil {
			if ctx.Err() == nil {
				b.Errorf("poll rows: %v", err)
			}
			return
		}
		for rows.Next() {
			var id uint64
			var ident string
			if err := rows.Scan(&id, &ident); err != nil {
				b.Errorf("scan row: %v", err)
			}
			last = max(last, id)
			seen.arrive(ident)
		}
		rows.Close()
		time.Sleep(5 * time.Millisecond)
	}
}

// apiMemory reads the API's Go heap in use and RSS from its /metrics.
func apiMemory(b *testing.B, base string) (heap, rss float64) {
	b.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "go_memstats_heap_inuse_bytes":
			heap = v
		case "process_resident_memory_bytes":
			rss = v
		}
	}
	if heap == 0 || rss == 0 {
		b.Fatal("no go_memstats_heap_inuse_bytes or process_resident_memory_bytes in /metrics")
	}
	return heap, rss
}

// peakRSS is a process's peak resident set (VmHWM) in bytes.
func peakRSS(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM in /proc status")
	return 0
}
