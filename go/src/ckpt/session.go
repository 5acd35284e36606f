package ckpt

import (
	"errors"
	"sync"
	"time"

	"ckpt/ckptpb"
)

var errSessionClosed = errors.New("SHUTTING_DOWN: the worker is stopping")

// session is the worker's side of its open Attach stream: writes are
// serialised, messages sent while it reconnects wait in an outbox, and
// acknowledgements wait for their results.
type session struct {
	mu        sync.Mutex
	stream    ckptpb.Coordinator_AttachClient
	outbox    []*ckptpb.AttachRequest
	nextID    uint64
	pending   map[uint64]chan *ckptpb.SessionResult
	connected chan struct{}
	closed    bool
	writeMu   sync.Mutex
}

const maxOutbox = 4096

func newSession() *session {
	return &session{pending: map[uint64]chan *ckptpb.SessionResult{}, connected: make(chan struct{})}
}

func (s *session) bind(stream ckptpb.Coordinator_AttachClient) {
	s.mu.Lock()
	s.stream = stream
	out := s.outbox
	s.outbox = nil
	close(s.connected)
	s.mu.Unlock()
	for _, m := range out {
		s.write(stream, m)
	}
}

func (s *session) unbind(stream ckptpb.Coordinator_AttachClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stream != stream {
		return
	}
	s.stream = nil
	s.connected = make(chan struct{})
	for id, ch := range s.pending {
		close(ch)
		delete(s.pending, id)
	}
}

func (s *session) write(stream ckptpb.Coordinator_AttachClient, m *ckptpb.AttachRequest) bool {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return stream.Send(m) == nil
}

func (s *session) closeSend(stream ckptpb.Coordinator_AttachClient) error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return stream.CloseSend()
}

// send writes m now, or after the next welcome while the session reconnects.
func (s *session) send(m *ckptpb.AttachRequest) {
	s.mu.Lock()
	stream := s.stream
	if stream == nil {
		if len(s.outbox) < maxOutbox {
			s.outbox = append(s.outbox, m)
		}
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if !s.write(stream, m) {
		s.mu.Lock()
		if len(s.outbox) < maxOutbox {
			s.outbox = append(s.outbox, m)
		}
		s.mu.Unlock()
	}
}

// request sends what build makes of a fresh request id and waits for its
// result; an error when no stream opens in time or it ends first.
func (s *session) request(build func(uint64) *ckptpb.AttachRequest, timeout time.Duration) (*ckptpb.SessionResult, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	s.mu.Lock()
	for s.stream == nil {
		if s.closed {
			s.mu.Unlock()
			return nil, errSessionClosed
		}
		wait := s.connected
		s.mu.Unlock()
		select {
		case <-wait:
		case <-deadline.C:
			return nil, errors.New("UNAVAILABLE: the session is reconnecting")
		}
		s.mu.Lock()
	}
	s.nextID++
	id := s.nextID
	ch := make(chan *ckptpb.SessionResult, 1)
	s.pending[id] = ch
	stream := s.stream
	s.mu.Unlock()
	forget := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}
	if !s.write(stream, build(id)) {
		forget()
		return nil, errors.New("UNAVAILABLE: the session stream refused the write")
	}
	select {
	case res, ok := <-ch:
		if !ok {
			return nil, errors.New("UNAVAILABLE: the session ended before the result")
		}
		return res, nil
	case <-deadline.C:
		forget()
		return nil, errors.New("UNAVAILABLE: no result in time")
	}
}

func (s *session) deliver(res *ckptpb.SessionResult) {
	s.mu.Lock()
	ch := s.pending[res.RequestId]
	delete(s.pending, res.RequestId)
	s.mu.Unlock()
	if ch != nil {
		ch <- res
	}
}
