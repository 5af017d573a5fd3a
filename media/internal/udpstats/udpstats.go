// Package udpstats reads what a process needs to tell its own limits from
// a server's: the receive-buffer drops of its own UDP sockets, the host's
// UDP error counters and its CPU time. Outside Linux it reads nothing.
package udpstats

import "time"

// Host is the host's (the network namespace's) UDP counters, from
// /proc/net/snmp.
type Host struct {
	InErrors     uint64 `json:"in_errors"`
	RcvbufErrors uint64 `json:"rcvbuf_errors"`
	SndbufErrors uint64 `json:"sndbuf_errors"`
}

// Sub returns h - o, field by field.
func (h Host) Sub(o Host) Host {
	return Host{InErrors: h.InErrors - o.InErrors, RcvbufErrors: h.RcvbufErrors - o.RcvbufErrors, SndbufErrors: h.SndbufErrors - o.SndbufErrors}
}

// CPU is a process's CPU time.
type CPU struct {
	User, System time.Duration
}

// Total is user plus system time.
func (c CPU) Total() time.Duration { return c.User + c.System }

// Sub returns c - o.
func (c CPU) Sub(o CPU) CPU { return CPU{User: c.User - o.User, System: c.System - o.System} }
