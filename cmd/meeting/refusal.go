package main

import (
	"bytes"
	"encoding/json"
	"net"
	"strconv"
)

// net/http answers a request it cannot parse (a malformed request line or
// header, a header over MaxHeaderBytes, an unsupported HTTP version) before
// any handler runs, by writing this to the connection in one Write:
// "HTTP/1.1 <code> <text>" + refusalHeaders + "<code> <text>[: reason]".
// Responses from handlers always carry a Date header and never match.
const refusalHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// envelopeListener makes those refusals JSON in the API's envelope,
// {"code":<status>,"msg":<net/http's text>,"data":null}, like every other
// error reply, so that a client parsing the envelope never meets plain text.
type envelopeListener struct{ net.Listener }

func (l envelopeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return envelopeConn{c}, nil
}

type envelopeConn struct{ net.Conn }

func (c envelopeConn) Write(p []byte) (int, error) {
	if out, ok := envelopeRefusal(p); ok {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// envelopeRefusal rewrites one of net/http's own refusals; ok is false for
// anything else.
func envelopeRefusal(p []byte) (out []byte, ok bool) {
	rest, found := bytes.CutPrefix(p, []byte("HTTP/1.1 "))
	if !found || len(rest) < 4 || rest[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	status, body, found := bytes.Cut(rest, []byte(refusalHeaders))
	if !found || bytes.ContainsAny(status, "\r\n") {
		return nil, false
	}
	msg, _ := json.Marshal(struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data any    `json:"data"`
	}{code, string(bytes.TrimSpace(body)), nil})
	out = append(out, "HTTP/1.1 "...)
	out = append(out, status...)
	out = append(out, "\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: "...)
	out = strconv.AppendInt(out, int64(len(msg)), 10)
	out = append(out, "\r\nConnection: close\r\n\r\n"...)
	return append(out, msg...), true
}
