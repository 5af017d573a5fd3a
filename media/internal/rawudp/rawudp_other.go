//go:build !linux

package rawudp

import "net"

// New returns c: raw syscalls are a Linux optimisation.
func New(c net.PacketConn) net.PacketConn { return c }
