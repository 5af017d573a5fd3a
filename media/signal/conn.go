package signal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Timing of a Conn.
const (
	// WriteTimeout bounds every write on the WebSocket.
	WriteTimeout = 10 * time.Second
	// PongWait is how long the peer may stay silent (no message, no pong).
	PongWait = 30 * time.Second
	// PingPeriod is how often a ping is sent; it is below PongWait.
	PingPeriod = PongWait * 9 / 10
	// sendQueue is how many messages may wait for the writer; a peer that
	// lets more pile up is too slow and is disconnected.
	sendQueue = 256
)

// ErrClosed is returned by Send after the connection ended.
var ErrClosed = errors.New("signal: connection closed")

// ErrSlowPeer is the cause of a connection closed because its send queue overflowed.
var ErrSlowPeer = errors.New("signal: peer too slow, send queue full")

// Conn runs one WebSocket: Run is the only reader and starts the only
// writer; Send queues a message for the writer from any goroutine.
type Conn struct {
	ws   *websocket.Conn
	out  chan []byte
	done chan struct{}

	bad func(raw []byte, e Error) // answers undecodable messages; nil sends e

	closeOnce sync.Once
	mu        sync.Mutex
	closeMsg  []byte // close frame to send, set by Close
	cause     error
}

// NewConn wraps ws; the caller must call Run.
func NewConn(ws *websocket.Conn) *Conn {
	ws.SetReadLimit(MaxMessageSize)
	return &Conn{ws: ws, out: make(chan []byte, sendQueue), done: make(chan struct{})}
}

// OnBadMessage makes f answer the messages Run cannot decode, instead of
// sending e (bad_message or unknown_type) as it is; raw is the message (nil
// for a binary one). f runs on Run's goroutine, like handle. Call it
// before Run.
func (c *Conn) OnBadMessage(f func(raw []byte, e Error)) { c.bad = f }

// Send queues m. It never blocks: when the queue is full the connection is
// closed (ErrSlowPeer).
func (c *Conn) Send(m Message) error {
	b, err := Encode(m)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
		return ErrClosed
	default:
	}
	select {
	case c.out <- b:
		return nil
	case <-c.done:
		return ErrClosed
	default:
		c.shutdown(ErrSlowPeer, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "too slow"))
		return ErrSlowPeer
	}
}

// Close ends the connection with a normal close frame carrying reason after
// the messages already queued; Run returns soon after.
func (c *Conn) Close(reason string) {
	c.shutdown(nil, websocket.FormatCloseMessage(websocket.CloseNormalClosure, reason))
}

func (c *Conn) shutdown(cause error, frame []byte) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.cause = cause
		c.closeMsg = frame
		c.mu.Unlock()
		close(c.done)
	})
}

// Done is closed when the connection is ending.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Run reads messages and calls handle for each decoded one, in order, on
// the calling goroutine; a message that does not decode is answered with an
// Error and reading goes on. Run returns when the peer goes away, the
// connection is closed, or ctx ends; it closes the WebSocket and waits for
// the writer before returning. handle must not block for long.
func (c *Conn) Run(ctx context.Context, handle func(Message)) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop()
	}()
	stop := context.AfterFunc(ctx, func() { c.Close("server shutting down") })
	defer stop()

	err := c.readLoop(handle)
	c.shutdown(err, nil)
	wg.Wait()
	_ = c.ws.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return c.cause
	}
	return err
}

func (c *Conn) readLoop(handle func(Message)) error {
	_ = c.ws.SetReadDeadline(time.Now().Add(PongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.ws.SetReadDeadline(time.Now().Add(PongWait))
	})
	for {
		typ, b, err := c.ws.ReadMessage()
		if err != nil {
			select {
			case <-c.done:
				return nil // we closed it
			default:
			}
			if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
				return nil
			}
			return fmt.Errorf("signal: read: %w", err)
		}
		select {
		case <-c.done:
			// Closing: what the peer sends now is not handled, but it is
			// read until its close frame (or the writer's deadline), so that
			// the socket is not closed on unread data. A TCP reset would
			// cost the peer what it has not read yet, the closing message
			// among it.
			continue
		default:
		}
		_ = c.ws.SetReadDeadline(time.Now().Add(PongWait))
		if typ != websocket.TextMessage {
			c.badMessage(nil, Error{Code: CodeBadMessage, Message: "only text messages are accepted"})
			continue
		}
		m, err := Decode(b)
		if err != nil {
			code := CodeBadMessage
			if errors.Is(err, ErrUnknownType) {
				code = CodeUnknownType
			}
			c.badMessage(b, Error{Code: code, Message: err.Error()})
			continue
		}
		handle(m)
	}
}

func (c *Conn) badMessage(raw []byte, e Error) {
	if c.bad != nil {
		c.bad(raw, e)
		return
	}
	_ = c.Send(e)
}

func (c *Conn) writeLoop() {
	ping := time.NewTicker(PingPeriod)
	defer ping.Stop()
	for {
		select {
		case b := <-c.out:
			if err := c.write(websocket.TextMessage, b); err != nil {
				c.shutdown(fmt.Errorf("signal: write: %w", err), nil)
				_ = c.ws.Close()
				return
			}
		case <-ping.C:
			if err := c.write(websocket.PingMessage, nil); err != nil {
				c.shutdown(fmt.Errorf("signal: ping: %w", err), nil)
				_ = c.ws.Close()
				return
			}
		case <-c.done:
			// Flush what is queued, then the close frame, then unblock the reader.
			for {
				select {
				case b := <-c.out:
					if c.write(websocket.TextMessage, b) != nil {
						_ = c.ws.Close()
						return
					}
					continue
				default:
				}
				break
			}
			c.mu.Lock()
			frame := c.closeMsg
			c.mu.Unlock()
			if frame != nil {
				_ = c.ws.WriteControl(websocket.CloseMessage, frame, time.Now().Add(time.Second))
				// Give the peer a moment to answer the close, then cut.
				_ = c.ws.SetReadDeadline(time.Now().Add(time.Second))
			} else {
				_ = c.ws.Close()
			}
			return
		}
	}
}

func (c *Conn) write(typ int, b []byte) error {
	_ = c.ws.SetWriteDeadline(time.Now().Add(WriteTimeout))
	return c.ws.WriteMessage(typ, b)
}
