package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/gorilla/websocket"
)

// bidi is a minimal WebDriver BiDi client (https://w3c.github.io/webdriver-bidi/)
// for Firefox's remote agent: commands are JSON messages with an id, answered
// by a message with the same id; events come without one and go to onEvent,
// on the reader goroutine.
type bidi struct {
	conn    *websocket.Conn
	onEvent func(method string, params json.RawMessage)

	writeMu sync.Mutex // one writer at a time (gorilla/websocket's rule)

	mu      sync.Mutex
	nextID  int
	pending map[int]chan bidiMessage
	err     error         // why the reader stopped
	done    chan struct{} // closed when the reader stops
}

// bidiMessage is any message from the remote end: a command's answer
// (type "success" or "error", with its id) or an event (type "event").
type bidiMessage struct {
	Type    string          `json:"type"`
	ID      *int            `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

// dialBiDi connects to a remote end's WebSocket (ws://host:port/session) and
// starts reading. gorilla/websocket sends no Origin header, which the
// remote agent requires of clients that are not web pages.
func dialBiDi(ctx context.Context, url string, onEvent func(method string, params json.RawMessage)) (*bidi, error) {
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", url, err)
	}
	b := &bidi{conn: conn, onEvent: onEvent, pending: map[int]chan bidiMessage{}, done: make(chan struct{})}
	go b.read()
	return b, nil
}

func (b *bidi) read() {
	var err error
	for {
		var m bidiMessage
		if err = b.conn.ReadJSON(&m); err != nil {
			break
		}
		if m.ID == nil {
			if m.Type == "event" && b.onEvent != nil {
				b.onEvent(m.Method, m.Params)
			}
			continue
		}
		b.mu.Lock()
		ch := b.pending[*m.ID]
		delete(b.pending, *m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m // buffered
		}
	}
	b.mu.Lock()
	b.err = err
	b.mu.Unlock()
	close(b.done)
}

// call sends a command and decodes its result into result (unless nil).
func (b *bidi) call(ctx context.Context, method string, params, result any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan bidiMessage, 1)
	b.mu.Lock()
	b.nextID++
	id := b.nextID
	b.pending[id] = ch
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
	}()

	b.writeMu.Lock()
	err := b.conn.WriteJSON(map[string]any{"id": id, "method": method, "params": params})
	b.writeMu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: send: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Type == "error" {
			return fmt.Errorf("%s: %s: %s", method, m.Error, m.Message)
		}
		if result == nil {
			return nil
		}
		if err := json.Unmarshal(m.Result, result); err != nil {
			return fmt.Errorf("%s: decode %s: %w", method, m.Result, err)
		}
		return nil
	case <-b.done:
		b.mu.Lock()
		defer b.mu.Unlock()
		return fmt.Errorf("%s: the connection closed: %w", method, b.err)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (b *bidi) close() {
	_ = b.conn.Close()
	<-b.done
}

// evaluate runs a JavaScript expression in a browsing context with
// script.evaluate, awaits a promise it returns, and decodes the value into
// result through JSON.stringify (BiDi's own serialization of values is
// richer than a test needs). userActivation gives the page a user
// activation for the evaluation, as a click would.
func (b *bidi) evaluate(ctx context.Context, browsingContext, expr string, userActivation bool, result any) error {
	var r struct {
		Type   string `json:"type"` // success or exception
		Result struct {
			Type  string `json:"type"`
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	err := b.call(ctx, "script.evaluate", map[string]any{
		"expression":      "(async () => JSON.stringify(await (" + expr + ")))()",
		"target":          map[string]string{"context": browsingContext},
		"awaitPromise":    true,
		"resultOwnership": "none",
		"userActivation":  userActivation,
	}, &r)
	if err != nil {
		return err
	}
	if r.Type == "exception" {
		return errors.New("exception: " + r.ExceptionDetails.Text)
	}
	value := r.Result.Value
	if r.Result.Type != "string" { // JSON.stringify(undefined)
		value = "null"
	}
	if err := json.Unmarshal([]byte(value), result); err != nil {
		return fmt.Errorf("decode %s: %w", value, err)
	}
	return nil
}
