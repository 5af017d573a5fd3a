package auth

import (
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// 20,000 logins with distinct 60 KB usernames must not hold 1.2 GB.
func TestLimiterMemoryBounded(t *testing.T) {
	const keys, keyBytes = 20_000, 60 << 10
	l := NewLimiter(10, 6*time.Second, nil)
	before := heapInUse()
	buf := make([]byte, keyBytes)
	for i := range keys {
		binary.BigEndian.PutUint32(buf, uint32(i))
		if !l.Allow("user:" + string(buf)) {
			t.Fatalf("key %d refused: every key is new", i)
		}
	}
	grown := heapInUse() - before
	runtime.KeepAlive(l)
	t.Logf("%d keys of %d KB: %d keys kept, heap in use grew by %.1f MB", keys, keyBytes>>10, l.Len(), float64(grown)/(1<<20))
	if l.Len() > DefaultMaxKeys {
		t.Errorf("%d keys kept, cap %d", l.Len(), DefaultMaxKeys)
	}
	if grown > 32<<20 {
		t.Errorf("heap in use grew by %d MB; want under 32 MB", grown>>20)
	}
}

func TestLimiterCapAndRefusals(t *testing.T) {
	now := time.Unix(0, 0)
	l := NewLimiter(2, time.Minute, func() time.Time { return now }, WithMaxKeys(3))
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if !l.Allow(k) {
			t.Fatalf("%s refused", k)
		}
		if l.Len() > 3 {
			t.Fatalf("%d keys kept, cap 3", l.Len())
		}
	}
	// A refused attempt remembers none of its keys.
	l.Allow("e")
	if w, ok := l.Take("e", "new"); ok || w != time.Minute {
		t.Fatalf("Take over the burst = %v, %v; want refused, 1m", w, ok)
	}
	if l.Wait("new") != 0 || l.Len() != 3 {
		t.Fatalf("a refused attempt remembered a key: %d kept", l.Len())
	}
	// An over-long key is stored hashed and still limited as itself.
	long := strings.Repeat("k", 10*MaxKeyBytes)
	l.Allow(long)
	l.Allow(long)
	if l.Allow(long) || !l.Allow(long[:len(long)-1]) {
		t.Fatal("a long key must be limited on its own")
	}
	for k := range l.keys {
		if len(k) > MaxKeyBytes {
			t.Fatalf("a key of %d bytes stored", len(k))
		}
	}
	l.Forget(long)
	if !l.Allow(long) {
		t.Fatal("Forget must give the key its budget back")
	}
}

func TestLimiterRunExpiresInBackground(t *testing.T) {
	defer goleak.VerifyNone(t)
	l := NewLimiter(1, time.Millisecond, nil)
	l.Allow("a")
	l.Allow("b")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for l.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := l.Len(); n != 0 {
		t.Errorf("%d idle keys left with no calls", n)
	}
	cancel()
	<-done
}
