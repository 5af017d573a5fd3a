//go:build !linux

package udpstats

// OwnDrops is not known outside Linux: 0.
func OwnDrops() (uint64, error) { return 0, nil }

// HostCounters are not known outside Linux: zero.
func HostCounters() (Host, error) { return Host{}, nil }

// SelfCPU is not known outside Linux: zero.
func SelfCPU() CPU { return CPU{} }
