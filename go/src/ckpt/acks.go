package ckpt

import (
	"errors"
	"sync"
	"time"

	"ckpt/ckptpb"
)

// DefaultMaxAckBytes bounds the estimated size of one SessionAcknowledge:
// the coordinator accepts messages up to its limit (64 MiB by default,
// configurable down to 64 KiB); the SDKs keep each below 3 MiB and split.
const DefaultMaxAckBytes = 3 * 1024 * 1024

// ackAttemptTimeout bounds one acknowledgement's wait for its result.
const ackAttemptTimeout = 10 * time.Second

// ackGiveUpAfter: an acknowledgement not accepted by then is given up (the checkpoint times out).
const ackGiveUpAfter = 60 * time.Second

// estimateSnapshotBytes estimates the encoded size of one TaskSnapshot,
// as the TypeScript SDK does.
func estimateSnapshotBytes(s *ckptpb.TaskSnapshot) int {
	n := 96 + len(s.TaskId)
	if s.State != nil {
		n += handleBytes(s.State)
	}
	for _, p := range s.Positions {
		n += 24 + len(p.Input)
	}
	return n
}

func handleBytes(h *ckptpb.StateHandle) int {
	n := 32 + len(h.Uri) + len(h.Checksum)
	for _, s := range h.Shared {
		n += handleBytes(s)
	}
	return n
}

// splitBySize splits snapshots into runs whose estimated size stays below
// maxBytes (a snapshot bigger on its own goes alone).
func splitBySize(snapshots []*ckptpb.TaskSnapshot, maxBytes int) [][]*ckptpb.TaskSnapshot {
	var runs [][]*ckptpb.TaskSnapshot
	var run []*ckptpb.TaskSnapshot
	size := 0
	for _, s := range snapshots {
		b := estimateSnapshotBytes(s)
		if len(run) > 0 && size+b > maxBytes {
			runs = append(runs, run)
			run, size = nil, 0
		}
		run = append(run, s)
		size += b
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	return runs
}

type ackBatch struct {
	checkpointID uint64
	epoch        uint64
	acks         []*ckptpb.TaskSnapshot
	declines     []*ckptpb.TaskDecline
	results      int
	timer        *time.Timer
}

// ackBatcher gathers the results of a worker's tasks per checkpoint and
// sends them in as few session messages as the size limit allows.
type ackBatcher struct {
	rt       *runtime
	expected int
	wait     time.Duration
	mu       sync.Mutex
	open     map[uint64]*ackBatch
	inFlight sync.WaitGroup
	closed   bool
}

func newAckBatcher(rt *runtime, expected int, wait time.Duration) *ackBatcher {
	return &ackBatcher{rt: rt, expected: expected, wait: wait, open: map[uint64]*ackBatch{}}
}

func (b *ackBatcher) add(checkpointID, epoch uint64, res taskResult) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	batch := b.open[checkpointID]
	if batch != nil && batch.epoch != epoch {
		batch.timer.Stop()
		delete(b.open, checkpointID)
		batch = nil
	}
	if batch == nil {
		batch = &ackBatch{checkpointID: checkpointID, epoch: epoch}
		batch.timer = time.AfterFunc(b.wait, func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if b.open[checkpointID] == batch {
				b.flushLocked(checkpointID)
			}
		})
		b.open[checkpointID] = batch
	}
	batch.results++
	if res.snapshot != nil {
		batch.acks = append(batch.acks, res.snapshot)
	} else {
		msg := res.decline
		if len(msg) > 4096 {
			msg = msg[:4096]
		}
		batch.declines = append(batch.declines, &ckptpb.TaskDecline{TaskId: res.taskID, Message: msg})
	}
	if batch.results >= b.expected {
		b.flushLocked(checkpointID)
	}
}

func (b *ackBatcher) discard(rng abortRange) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, batch := range b.open {
		if rng.matches(id) {
			batch.timer.Stop()
			delete(b.open, id)
		}
	}
}

func (b *ackBatcher) discardOtherEpochs(epoch uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, batch := range b.open {
		if batch.epoch != epoch {
			batch.timer.Stop()
			delete(b.open, id)
		}
	}
}

// flushAll sends what is open and waits (up to max) for what is being sent.
func (b *ackBatcher) flushAll(max time.Duration) {
	b.mu.Lock()
	for id := range b.open {
		b.flushLocked(id)
	}
	b.closed = true
	b.mu.Unlock()
	done := make(chan struct{})
	go func() { b.inFlight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(max):
	}
}

func (b *ackBatcher) flushLocked(id uint64) {
	batch := b.open[id]
	if batch == nil {
		return
	}
	batch.timer.Stop()
	delete(b.open, id)
	if len(batch.acks) == 0 && len(batch.declines) == 0 {
		return
	}
	b.inFlight.Add(1)
	go func() {
		defer b.inFlight.Done()
		b.send(batch)
	}()
}

func (b *ackBatcher) send(batch *ackBatch) {
	rt := b.rt
	if len(batch.declines) > 0 {
		// A decline aborts the checkpoint: the acknowledgements of the other tasks would only be refused.
		b.deliver(batch, false, func(requestID uint64) *ckptpb.AttachRequest {
			return &ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Decline{Decline: &ckptpb.SessionDecline{
				RequestId: requestID, Epoch: batch.epoch, CheckpointId: batch.checkpointID, Declines: batch.declines}}}
		})
		return
	}
	max := rt.w.opts.MaxAckBytes
	if max <= 0 || max > DefaultMaxAckBytes {
		max = DefaultMaxAckBytes
	}
	for _, run := range splitBySize(batch.acks, max) {
		run := run
		b.deliver(batch, true, func(requestID uint64) *ckptpb.AttachRequest {
			return &ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Acknowledge{Acknowledge: &ckptpb.SessionAcknowledge{
				RequestId: requestID, Epoch: batch.epoch, CheckpointId: batch.checkpointID, Snapshots: run}}}
		})
	}
}

// deliver sends one acknowledgement or decline until the coordinator
// answers it, resending after a lost session, while its epoch is current.
func (b *ackBatcher) deliver(batch *ackBatch, ack bool, build func(uint64) *ckptpb.AttachRequest) {
	rt := b.rt
	giveUp := time.Now().Add(ackGiveUpAfter)
	for attempt := 0; time.Now().Before(giveUp); attempt++ {
		rt.mu.Lock()
		if rt.closedForAcks() || rt.intake.beliefs.epoch != batch.epoch {
			rt.mu.Unlock()
			return
		}
		if ack {
			rt.intake.ackSent(batch.epoch, batch.checkpointID)
		}
		rt.mu.Unlock()
		res, err := rt.w.session.request(build, ackAttemptTimeout)
		rt.mu.Lock()
		if err != nil {
			if ack {
				rt.intake.beliefs.ackUnanswered(batch.epoch, batch.checkpointID)
			}
			rt.mu.Unlock()
			if errors.Is(err, errSessionClosed) {
				return
			}
			time.Sleep(backoff(attempt))
			continue
		}
		accepted := res.ErrorReason == ckptpb.ErrorReason_ERROR_REASON_UNSPECIFIED
		if ack {
			rt.intake.ackAnswered(batch.epoch, batch.checkpointID, accepted)
		} else if accepted {
			rt.intake.beliefs.confirm(batch.checkpointID)
		}
		rt.mu.Unlock()
		if accepted {
			return
		}
		what := "decline"
		if ack {
			what = "acknowledgement"
		}
		if !res.Retryable {
			rt.logf("%s of checkpoint %d refused: %s: %s", what, batch.checkpointID, reasonName(res.ErrorReason), res.ErrorMessage)
			return
		}
		time.Sleep(backoff(attempt))
	}
}

func (rt *runtime) closedForAcks() bool { return rt.closed }

// ackUnanswered: a send of acknowledgements got no answer (the session was lost).
func (b *checkpointBeliefs) ackUnanswered(epoch, id uint64) {
	if s := b.acks[id]; s != nil && epoch == b.epoch && s.pending > 0 {
		s.pending--
	}
}
