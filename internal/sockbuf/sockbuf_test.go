package sockbuf

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// sysctl reads a Linux sysctl integer, or -1.
func sysctl(name string) int {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

func TestSetReadsBackWhatTheKernelGranted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sizes are read back on Linux only")
	}
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := Set(c, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	if got.Read != 64<<10 || got.Write != 64<<10 {
		t.Fatalf("asked 64 KiB, got %+v", got)
	}
	// Far above any host's limit: capped at net.core.rmem_max, and said so.
	rmax := sysctl("net.core.rmem_max")
	huge := 1 << 30
	if rmax >= huge || rmax < 0 {
		t.Skipf("net.core.rmem_max is %d", rmax)
	}
	var logs bytes.Buffer
	SetAndLog(slog.New(slog.NewTextHandler(&logs, nil)), "test", huge, c)
	if !strings.Contains(logs.String(), "capped by the kernel") || !strings.Contains(logs.String(), "rcvbuf_bytes="+strconv.Itoa(rmax)) {
		t.Fatalf("log: %s (rmem_max %d)", logs.String(), rmax)
	}
}
