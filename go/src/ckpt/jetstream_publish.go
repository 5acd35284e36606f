package ckpt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	nats "github.com/nats-io/nats.go"
)

// streamPublication is a run of messages to publish to a stream.
type streamPublication struct {
	// subject is one of the stream's.
	subject  string
	payloads [][]byte
	// msgID is the message id of payloads[i], for the stream's duplicate detection.
	msgID func(i int) string
	// maxInFlight is the most publications waiting for their acknowledgement at once.
	maxInFlight int
	// timeout fails the run when publications wait and none is acknowledged for this long.
	timeout time.Duration
}

// Errors of publishToStream worth publishing again: the stream may answer later.
var (
	errNoStreamAnswered  = errors.New("no stream answered")
	errNoAcknowledgement = errors.New("no acknowledgement in time")
)

// ackResult is the stream's answer to publication index.
type ackResult struct {
	index int
	err   error
}

// publishToStream publishes every payload, in order, and returns once the
// stream acknowledged each (a duplicate counts: the stream has it). It
// fails with the first refusal, the timeout or the end of ctx; messages
// published before may be in the stream. All publications share one reply
// subscription (acknowledgement of message i on "<inbox>.<i>"), under the
// connection's inbox prefix. Messages of one connection reach the stream in
// the order they are published, so the stream keeps the order of payloads,
// unless the connection is lost meanwhile: what went out on the lost
// connection is lost, what was buffered goes out after the reconnect, and a
// publication again puts the lost ones after those.
func publishToStream(ctx context.Context, nc *nats.Conn, p streamPublication) error {
	n := len(p.payloads)
	if n == 0 {
		return nil
	}
	inbox := nc.NewInbox()
	results := make(chan ackResult, 64)
	finished := make(chan struct{})
	defer close(finished)
	sub, err := nc.Subscribe(inbox+".*", func(m *nats.Msg) {
		index, err := strconv.Atoi(m.Subject[len(inbox)+1:])
		if err != nil || index < 0 || index >= n {
			return
		}
		select {
		case results <- ackResult{index: index, err: checkPubAck(m, index)}:
		case <-finished:
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	window := p.maxInFlight
	if window < 1 {
		window = 1
	}
	acked := make([]bool, n)
	sent, done := 0, 0
	fill := func() error {
		for ; sent < n && sent-done < window; sent++ {
			m := nats.NewMsg(p.subject)
			m.Header.Set(nats.MsgIdHdr, p.msgID(sent))
			m.Reply = inbox + "." + strconv.Itoa(sent)
			m.Data = p.payloads[sent]
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
		}
		return nil
	}
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	if err := fill(); err != nil {
		return err
	}
	for done < n {
		select {
		case r := <-results:
			if r.err != nil {
				return r.err
			}
			if acked[r.index] {
				continue
			}
			acked[r.index] = true
			done++
			resetTimer(timer, p.timeout)
			if err := fill(); err != nil {
				return err
			}
		case <-timer.C:
			return fmt.Errorf("%w: none within %v (%d publications waiting)", errNoAcknowledgement, p.timeout, sent-done)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func resetTimer(t *time.Timer, d time.Duration) {
	if !t.Stop() {
		select {
		case <-t.C:
		default:
		}
	}
	t.Reset(d)
}

// pubAck is what a stream answers to a publication.
type pubAck struct {
	Stream string         `json:"stream"`
	Error  *nats.APIError `json:"error"`
}

// checkPubAck returns nil when m is the stream's acknowledgement of message index.
func checkPubAck(m *nats.Msg, index int) error {
	if status := m.Header.Get("Status"); len(m.Data) == 0 && status != "" {
		return fmt.Errorf("message %d: %w (%s %s)", index, errNoStreamAnswered, status, m.Header.Get("Description"))
	}
	var ack pubAck
	if err := json.Unmarshal(m.Data, &ack); err != nil {
		return fmt.Errorf("message %d: invalid acknowledgement: %w", index, err)
	}
	if ack.Error != nil {
		return fmt.Errorf("message %d: %w", index, ack.Error)
	}
	if ack.Stream == "" {
		return fmt.Errorf("message %d: invalid acknowledgement %q", index, m.Data)
	}
	return nil
}
