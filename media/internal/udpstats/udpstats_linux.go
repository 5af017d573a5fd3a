package udpstats

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// OwnDrops returns the datagrams the kernel dropped for this process's UDP
// sockets (IPv4 and IPv6) since they were opened: the drops column of
// /proc/net/udp and udp6 for the socket inodes among /proc/self/fd.
func OwnDrops() (uint64, error) {
	inodes, err := ownSockets()
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, f := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		n, err := drops(f, inodes)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, err
		}
		total += n
	}
	return total, nil
}

func ownSockets() (map[string]bool, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("udpstats: %w", err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(l, "socket:["); ok {
			inodes[strings.TrimSuffix(ino, "]")] = true
		}
	}
	return inodes, nil
}

// drops sums the drops column of the rows of a /proc/net/udp file whose
// inode is in inodes.
func drops(path string, inodes map[string]bool) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseDrops(bufio.NewScanner(f), inodes)
}

func parseDrops(sc *bufio.Scanner, inodes map[string]bool) (uint64, error) {
	var total uint64
	header := true
	for sc.Scan() {
		if header {
			header = false
			continue
		}
		f := strings.Fields(sc.Text())
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
		if len(f) < 13 || !inodes[f[9]] {
			continue
		}
		n, err := strconv.ParseUint(f[12], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("udpstats: drops %q: %w", f[12], err)
		}
		total += n
	}
	return total, sc.Err()
}

// HostCounters reads the Udp line of /proc/net/snmp.
func HostCounters() (Host, error) {
	b, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return Host{}, fmt.Errorf("udpstats: %w", err)
	}
	return parseSNMP(string(b))
}

func parseSNMP(s string) (Host, error) {
	var names []string
	for _, line := range strings.Split(s, "\n") {
		rest, ok := strings.CutPrefix(line, "Udp: ")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		var h Host
		for i, name := range names {
			if i >= len(f) {
				break
			}
			v, err := strconv.ParseUint(f[i], 10, 64)
			if err != nil {
				continue
			}
			switch name {
			case "InErrors":
				h.InErrors = v
			case "RcvbufErrors":
				h.RcvbufErrors = v
			case "SndbufErrors":
				h.SndbufErrors = v
			}
		}
		return h, nil
	}
	return Host{}, fmt.Errorf("udpstats: no Udp counters in /proc/net/snmp")
}

// SelfCPU returns this process's CPU time (getrusage RUSAGE_SELF).
func SelfCPU() CPU {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return CPU{}
	}
	return CPU{User: time.Duration(ru.Utime.Nano()), System: time.Duration(ru.Stime.Nano())}
}
