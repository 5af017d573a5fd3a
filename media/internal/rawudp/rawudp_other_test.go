//go:build !linux

package rawudp

import "net"

const isLinux = false

func isWrapped(net.PacketConn) bool { return false }
