package ckpt

import (
	"fmt"
	"sort"
	"time"
)

// Barrier alignment of one task's inputs, a pure state machine (see the
// CheckpointMode values in proto/ckpt/v1/types.proto):
//
//   - aligned: an input that delivered barrier n is held back until every
//     input has; then the task snapshots n.
//   - at-least-once: nothing is held back; the task snapshots n once n has
//     arrived on every input.
//   - unaligned: the task snapshots n at the first barrier n offered, ahead
//     of the records queued; records taken afterwards from an input before
//     its barrier n are in flight for n; n finishes when every input
//     delivered it.
//
// A checkpoint that can no longer align (an input delivered a newer
// barrier without it) is cancelled.

type alignMode int

const (
	modeAligned alignMode = iota
	modeAtLeastOnce
	modeUnaligned
)

func (m alignMode) String() string {
	switch m {
	case modeAtLeastOnce:
		return "at-least-once"
	case modeUnaligned:
		return "unaligned"
	}
	return "aligned"
}

type inputItem struct {
	barrier      bool
	checkpointID uint64
	record       Record
}

type actionKind int

const (
	actProcess actionKind = iota
	actSnapshot
	actFinish
	actCancel
)

type alignAction struct {
	kind         actionKind
	input        string
	record       Record
	inFlightFor  []uint64
	checkpointID uint64
	alignmentMs  uint64
	startedAt    time.Time
	reason       string
}

type pendingAlign struct {
	seen  map[string]bool
	first time.Time
}

type inputAligner struct {
	inputs       []string
	mode         alignMode
	now          func() time.Time
	queues       map[string][]inputItem
	pending      map[uint64]*pendingAlign
	lastBarrier  map[string]uint64
	cancelled    map[uint64]bool
	out          []alignAction
	lastSnapshot uint64
	lastStarted  uint64
	cursor       int
}

func newInputAligner(inputs []string, mode alignMode) *inputAligner {
	seen := map[string]bool{}
	a := &inputAligner{mode: mode, now: time.Now, queues: map[string][]inputItem{}}
	for _, in := range inputs {
		if !seen[in] {
			seen[in] = true
			a.inputs = append(a.inputs, in)
			a.queues[in] = nil
		}
	}
	a.reset()
	return a
}

func (a *inputAligner) offer(input string, item inputItem) bool {
	if _, ok := a.queues[input]; !ok {
		return false
	}
	if a.mode == modeUnaligned && item.barrier {
		a.startUnaligned(item.checkpointID)
	}
	a.queues[input] = append(a.queues[input], item)
	return true
}

func (a *inputAligner) next() (alignAction, bool) {
	for {
		if len(a.out) > 0 {
			act := a.out[0]
			a.out = a.out[1:]
			return act, true
		}
		input, ok := a.nextInput()
		if !ok {
			return alignAction{}, false
		}
		q := a.queues[input]
		item := q[0]
		q[0] = inputItem{}
		a.queues[input] = q[1:]
		if !item.barrier {
			return a.process(input, item.record), true
		}
		if a.mode == modeUnaligned {
			a.onUnalignedBarrier(input, item.checkpointID)
		} else {
			a.onBarrier(input, item.checkpointID)
		}
	}
}

func (a *inputAligner) cancel(checkpointID uint64, upTo bool) {
	r := abortRange{checkpointID, upTo}
	for id := range a.pending {
		if r.matches(id) {
			delete(a.pending, id)
		}
	}
	if checkpointID > a.lastSnapshot {
		a.cancelled[checkpointID] = true
	}
	kept := a.out[:0]
	for _, act := range a.out {
		if act.kind == actProcess || !r.matches(act.checkpointID) {
			kept = append(kept, act)
		}
	}
	a.out = kept
}

func (a *inputAligner) reset() {
	for in := range a.queues {
		a.queues[in] = nil
	}
	a.pending = map[uint64]*pendingAlign{}
	a.lastBarrier = map[string]uint64{}
	a.cancelled = map[uint64]bool{}
	a.out = nil
	a.lastSnapshot = 0
	a.lastStarted = 0
}

func (a *inputAligner) queued() int {
	n := 0
	for _, q := range a.queues {
		n += len(q)
	}
	return n
}

func (a *inputAligner) blockedInputs() []string {
	var out []string
	for _, in := range a.inputs {
		if a.isBlocked(in) {
			out = append(out, in)
		}
	}
	return out
}

func (a *inputAligner) nextInput() (string, bool) {
	n := len(a.inputs)
	for i := 0; i < n; i++ {
		in := a.inputs[(a.cursor+i)%n]
		if len(a.queues[in]) > 0 && !a.isBlocked(in) {
			a.cursor = (a.cursor + i + 1) % n
			return in, true
		}
	}
	return "", false
}

func (a *inputAligner) isBlocked(input string) bool {
	if a.mode != modeAligned {
		return false
	}
	for _, p := range a.pending {
		if p.seen[input] {
			return true
		}
	}
	return false
}

func (a *inputAligner) onBarrier(input string, id uint64) {
	if id > a.lastBarrier[input] {
		a.lastBarrier[input] = id
	}
	a.cancelSkipped(input, id)
	if id <= a.lastSnapshot || a.cancelled[id] {
		return
	}
	for _, other := range a.inputs {
		if other != input && a.lastBarrier[other] > id && !(a.pending[id] != nil && a.pending[id].seen[other]) {
			a.giveUp(id, fmt.Sprintf("input %s delivered a newer barrier without barrier %d", other, id))
			return
		}
	}
	now := a.now()
	p := a.pending[id]
	if p == nil {
		p = &pendingAlign{seen: map[string]bool{}, first: now}
		a.pending[id] = p
	}
	p.seen[input] = true
	if len(p.seen) < len(a.inputs) {
		return
	}
	a.settle(id)
	a.out = append(a.out, alignAction{kind: actSnapshot, checkpointID: id, alignmentMs: msBetween(p.first, now), startedAt: p.first})
}

func (a *inputAligner) process(input string, rec Record) alignAction {
	if a.mode != modeUnaligned || len(a.pending) == 0 {
		return alignAction{kind: actProcess, input: input, record: rec}
	}
	var ids []uint64
	for id, p := range a.pending {
		if !p.seen[input] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return alignAction{kind: actProcess, input: input, record: rec, inFlightFor: ids}
}

func (a *inputAligner) startUnaligned(id uint64) {
	if id <= a.lastStarted || a.cancelled[id] {
		return
	}
	a.lastStarted = id
	now := a.now()
	a.pending[id] = &pendingAlign{seen: map[string]bool{}, first: now}
	a.out = append(a.out, alignAction{kind: actSnapshot, checkpointID: id, startedAt: now})
}

func (a *inputAligner) onUnalignedBarrier(input string, id uint64) {
	if id > a.lastBarrier[input] {
		a.lastBarrier[input] = id
	}
	a.cancelSkipped(input, id)
	p := a.pending[id]
	if p == nil {
		return
	}
	p.seen[input] = true
	if len(p.seen) < len(a.inputs) {
		return
	}
	a.settle(id)
	a.out = append(a.out, alignAction{kind: actFinish, checkpointID: id, alignmentMs: msBetween(p.first, a.now())})
}

func (a *inputAligner) cancelSkipped(input string, id uint64) {
	var ids []uint64
	for pid, p := range a.pending {
		if pid < id && !p.seen[input] {
			ids = append(ids, pid)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, pid := range ids {
		a.giveUp(pid, fmt.Sprintf("input %s delivered barrier %d without barrier %d", input, id, pid))
	}
}

func (a *inputAligner) giveUp(id uint64, reason string) {
	delete(a.pending, id)
	a.cancelled[id] = true
	a.out = append(a.out, alignAction{kind: actCancel, checkpointID: id, reason: reason})
}

func msBetween(from, to time.Time) uint64 {
	d := to.Sub(from)
	if d < 0 {
		return 0
	}
	return uint64(d / time.Millisecond)
}

// settle ends the alignment of checkpoint id: every input delivered its
// barrier, and cancellations up to it are no longer needed.
func (a *inputAligner) settle(id uint64) {
	delete(a.pending, id)
	a.lastSnapshot = id
	for c := range a.cancelled {
		if c <= id {
			delete(a.cancelled, c)
		}
	}
}
