//go:build !linux

package sfu

import "net"

// newRawUDP returns c: raw syscalls are a Linux optimisation.
func newRawUDP(c net.PacketConn) net.PacketConn { return c }
