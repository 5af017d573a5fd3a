// Package turn runs the TURN relay of a room: a pion/turn server on the UDP
// sockets and TCP or TLS listeners its caller gives (ListenUDP opens several
// SO_REUSEPORT sockets on one port), the TURN REST API credentials that coturn calls use-auth-secret, a peer
// policy that refuses internal address ranges unless explicitly allowed,
// allocation quotas per user and in total, and Prometheus metrics.
//
// pion/turn answers the protocol; this package adds policy around it. A guard
// sits in front of pion on every client-facing socket and sees each TURN
// control message: it refuses allocations over quota with 486 (Allocation
// Quota Reached) and permissions to denied peers with 403 (Forbidden), and
// watches Allocate responses to account allocations per user. Relay sockets
// are wrapped to count relayed traffic and to release quota when pion closes
// an allocation.
package turn
