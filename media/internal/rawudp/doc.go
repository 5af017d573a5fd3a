// Package rawudp wraps a UDP socket so that ReadFrom and WriteTo are raw
// non-blocking recvfrom and sendto syscalls, with Go's poller used only to
// wait for readiness. The SFU's ICE socket uses it (the TURN server's sockets
// are served by media/internal/udploop instead).
//
// Made the usual way, every read and write of a *net.UDPConn marks the
// goroutine's P as in a syscall. With many goroutines runnable (TURN relays)
// the scheduler hands the P to another thread, and the context switches
// dominate the CPU at tens of thousands of datagrams a second. When the
// process was idle before a burst (the SFU forwarding one packet to each
// subscriber) leaving the syscall wakes the runtime's sysmon thread, which
// then polls every 20µs for a millisecond: at a few hundred bursts a second
// that costs as much CPU as the forwarding itself. recvfrom and sendto on a
// non-blocking UDP socket never block, so they need neither the P hand-off
// nor sysmon.
//
// Raw syscalls are a Linux optimisation: elsewhere New returns the socket
// unchanged.
package rawudp
