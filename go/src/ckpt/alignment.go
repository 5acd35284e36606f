package ckpt

import (
	"fmt"
	"sort"
	"time"
)

// Barrier alignment of one task's inputs, a pure state machine (see the
// CheckpointMode values in proto/ckpt/v1/types.proto and
// proto/PROTOCOL.md §7.3). It is the TypeScript SDK's
// src/sdk/alignment.ts, item for item:
//
//   - aligned: an input that delivered barrier n is held back until every
//     input has; then the task snapshots n.
//   - at-least-once: nothing is held back; the task snapshots n once n has
//     arrived on every input.
//   - unaligned: the task snapshots n when the first barrier n is offered,
//     ahead of the records queued; barriers are taken when offered, never
//     queued behind records. Records taken afterwards from an input before
//     its barrier n are in flight for n (inFlightFor), and so are the
//     records still queued on an input when its barrier n is offered
//     (actInFlight: stored at once, processed later as usual). When barrier
//     n was offered on every input, n is finished at once: a checkpoint
//     never waits for the records queued ahead of its barriers.
//   - aligned with a timeout (timeout > 0): a checkpoint whose first
//     barrier reached the task (was offered, queued behind records or not)
//     that long ago and that has not aligned yet is taken unaligned: the
//     task snapshots at once; on each input whose barrier n is queued, the
//     records ahead of it are in flight and the barrier counts as
//     delivered; the other inputs are no longer held back, their records
//     are in flight for n until their barrier n is offered, which is then
//     taken at once as in unaligned mode. Checkpoints time out in id
//     order, and a savepoint's never does (it holds no in-flight records),
//     so none times out while an older one still aligns.
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
	// savepoint: the barrier of a savepoint, whose alignment never times out.
	savepoint bool
	record    Record
}

type actionKind int

const (
	actProcess actionKind = iota
	actSnapshot
	actInFlight
	actFinish
	actCancel
)

// alignAction is what the task does next. A snapshot's startedAt is when
// the checkpoint reached the task; an unaligned snapshot (unaligned mode,
// or an aligned checkpoint that timed out) records in-flight records
// until its actFinish. actInFlight carries records of input that belong
// to checkpointID's snapshot.
type alignAction struct {
	kind         actionKind
	input        string
	record       Record
	records      []Record
	inFlightFor  []uint64
	checkpointID uint64
	alignmentMs  uint64
	startedAt    time.Time
	unaligned    bool
	reason       string
}

type pendingAlign struct {
	seen  map[string]bool
	first time.Time
	// unaligned: snapshotted already, recording in-flight records until every input delivered the barrier.
	unaligned bool
}

// arrival is when a checkpoint's first barrier reached the task (aligned with a timeout).
type arrival struct {
	at    time.Time
	never bool // a savepoint: it never times out
}

type inputAligner struct {
	inputs       []string
	mode         alignMode
	timeout      time.Duration
	now          func() time.Time
	queues       map[string][]inputItem
	pending      map[uint64]*pendingAlign
	arrived      map[uint64]arrival
	lastBarrier  map[string]uint64
	cancelled    map[uint64]bool
	out          []alignAction
	lastSnapshot uint64
	lastStarted  uint64
	cursor       int
}

// newInputAligner aligns inputs in mode; timeout (aligned mode only, 0:
// never) is how long a checkpoint may wait to align before it is taken
// unaligned.
func newInputAligner(inputs []string, mode alignMode, timeout time.Duration) *inputAligner {
	seen := map[string]bool{}
	a := &inputAligner{mode: mode, now: time.Now, queues: map[string][]inputItem{}}
	if mode == modeAligned && timeout > 0 {
		a.timeout = timeout
	}
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

// offer queues one item of input; false (dropped) for an unknown input.
func (a *inputAligner) offer(input string, item inputItem) bool {
	if _, ok := a.queues[input]; !ok {
		return false
	}
	if item.barrier {
		if a.mode == modeUnaligned {
			// Unaligned barriers are taken when offered: never queued behind records.
			a.startUnaligned(item.checkpointID)
			a.onUnalignedBarrier(input, item.checkpointID)
			return true
		}
		if p := a.pending[item.checkpointID]; p != nil && p.unaligned {
			// The checkpoint timed out into an unaligned one: its later barriers are taken when offered too.
			a.onUnalignedBarrier(input, item.checkpointID)
			return true
		}
		if a.timeout > 0 {
			a.arrive(item.checkpointID, item.savepoint)
		}
	}
	a.queues[input] = append(a.queues[input], item)
	return true
}

// next is the next action; false when nothing can proceed until more items arrive.
func (a *inputAligner) next() (alignAction, bool) {
	if len(a.arrived) > 0 {
		a.expire()
	}
	for {
		if act, ok := a.shiftOut(); ok {
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
		a.onBarrier(input, item.checkpointID)
	}
}

// nextControl is the next action that is not a record (a snapshot,
// in-flight records, a finish or a cancel ready now): what a task whose
// output is over its window still does.
func (a *inputAligner) nextControl() (alignAction, bool) {
	if len(a.arrived) > 0 {
		a.expire()
	}
	return a.shiftOut()
}

func (a *inputAligner) shiftOut() (alignAction, bool) {
	if len(a.out) == 0 {
		return alignAction{}, false
	}
	act := a.out[0]
	a.out[0] = alignAction{}
	a.out = a.out[1:]
	return act, true
}

// nextTimeout is when the next checkpoint times out if it has not aligned
// by then: when the task looks again; false when none will.
func (a *inputAligner) nextTimeout() (time.Time, bool) {
	_, arr, ok := a.firstArrived()
	if !ok || arr.never {
		return time.Time{}, false
	}
	return arr.at.Add(a.timeout), true
}

// cancel gives up on checkpointID (aborted), or every one up to it with
// upTo: inputs held back for it are released and its later barriers ignored.
func (a *inputAligner) cancel(checkpointID uint64, upTo bool) {
	r := abortRange{checkpointID, upTo}
	for id := range a.pending {
		if r.matches(id) {
			delete(a.pending, id)
		}
	}
	for id := range a.arrived {
		if r.matches(id) {
			delete(a.arrived, id)
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

// reset drops every queued item and all alignment state (a restore).
func (a *inputAligner) reset() {
	for in := range a.queues {
		a.queues[in] = nil
	}
	a.pending = map[uint64]*pendingAlign{}
	a.arrived = map[uint64]arrival{}
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

// nextInput: round robin over the inputs that are not held back and have items.
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
		if !p.unaligned && p.seen[input] {
			return true
		}
	}
	return false
}

// arrive: barrier id reached the task (aligned with a timeout); its clock starts at the first.
func (a *inputAligner) arrive(id uint64, savepoint bool) {
	if id <= a.lastSnapshot || a.cancelled[id] {
		return
	}
	if _, ok := a.arrived[id]; !ok {
		a.arrived[id] = arrival{at: a.now(), never: savepoint}
	} else if savepoint {
		a.arrived[id] = arrival{never: true}
	}
}

// firstArrived: the checkpoint with the lowest id among those that may still time out.
func (a *inputAligner) firstArrived() (uint64, arrival, bool) {
	var first uint64
	var arr arrival
	found := false
	for id, at := range a.arrived {
		if !found || id < first {
			first, arr, found = id, at, true
		}
	}
	return first, arr, found
}

// expire times out, in id order, the checkpoints that waited the timeout to align.
func (a *inputAligner) expire() {
	now := a.now()
	for {
		id, arr, ok := a.firstArrived()
		if !ok {
			return
		}
		live := id > a.lastSnapshot && !a.cancelled[id]
		if live && (arr.never || arr.at.Add(a.timeout).After(now)) {
			return
		}
		delete(a.arrived, id)
		if live {
			a.timeOut(id, arr.at, now)
		}
	}
}

// timeOut: checkpoint id, whose first barrier arrived at arrived, waited too long to align. The task snapshots
// now; on each input that did not deliver its barrier but has it queued,
// the records ahead of it are in flight and the barrier counts as
// delivered (it is skipped when reached).
func (a *inputAligner) timeOut(id uint64, arrived, now time.Time) {
	p := a.pending[id]
	if p == nil {
		// No input delivered the barrier yet (each is queued behind records): it started when the first arrived.
		p = &pendingAlign{seen: map[string]bool{}, first: arrived}
		a.pending[id] = p
	}
	p.unaligned = true
	a.out = append(a.out, alignAction{kind: actSnapshot, checkpointID: id, alignmentMs: msBetween(p.first, now), startedAt: p.first, unaligned: true})
	for _, in := range a.inputs {
		if p.seen[in] {
			continue
		}
		var records []Record
		found := false
		for _, item := range a.queues[in] {
			if !item.barrier {
				records = append(records, item.record)
			} else if item.checkpointID >= id {
				found = item.checkpointID == id
				break
			}
		}
		if !found {
			continue
		}
		if len(records) > 0 {
			a.out = append(a.out, alignAction{kind: actInFlight, checkpointID: id, input: in, records: records})
		}
		p.seen[in] = true
	}
	a.finishIfComplete(id, p)
}

func (a *inputAligner) onBarrier(input string, id uint64) {
	if id > a.lastBarrier[input] {
		a.lastBarrier[input] = id
	}
	a.cancelSkipped(input, id)
	if id <= a.lastSnapshot || a.cancelled[id] {
		return
	}
	// A checkpoint that timed out took this barrier when it did: the records ahead of it are stored in flight.
	if p := a.pending[id]; p != nil && p.unaligned {
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
	delete(a.arrived, id)
	a.settle(id)
	a.out = append(a.out, alignAction{kind: actSnapshot, checkpointID: id, alignmentMs: msBetween(p.first, now), startedAt: p.first})
}

func (a *inputAligner) process(input string, rec Record) alignAction {
	if len(a.pending) == 0 {
		return alignAction{kind: actProcess, input: input, record: rec}
	}
	var ids []uint64
	for id, p := range a.pending {
		if p.unaligned && !p.seen[input] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return alignAction{kind: actProcess, input: input, record: rec, inFlightFor: ids}
}

// startUnaligned: the first barrier id offered on any input; snapshot now, ahead of what is queued.
func (a *inputAligner) startUnaligned(id uint64) {
	if id <= a.lastStarted || a.cancelled[id] {
		return
	}
	a.lastStarted = id
	now := a.now()
	a.pending[id] = &pendingAlign{seen: map[string]bool{}, first: now, unaligned: true}
	a.out = append(a.out, alignAction{kind: actSnapshot, checkpointID: id, startedAt: now, unaligned: true})
}

// onUnalignedBarrier: barrier id offered on input; the records still queued on it are in flight for id.
func (a *inputAligner) onUnalignedBarrier(input string, id uint64) {
	if id > a.lastBarrier[input] {
		a.lastBarrier[input] = id
	}
	a.cancelSkipped(input, id)
	p := a.pending[id]
	if p == nil || p.seen[input] {
		return
	}
	var records []Record
	for _, item := range a.queues[input] {
		if !item.barrier {
			records = append(records, item.record)
		}
	}
	if len(records) > 0 {
		a.out = append(a.out, alignAction{kind: actInFlight, checkpointID: id, input: input, records: records})
	}
	p.seen[input] = true
	a.finishIfComplete(id, p)
}

// finishIfComplete finishes an unaligned checkpoint whose barrier every input delivered.
func (a *inputAligner) finishIfComplete(id uint64, p *pendingAlign) {
	if len(p.seen) < len(a.inputs) {
		return
	}
	a.settle(id)
	a.out = append(a.out, alignAction{kind: actFinish, checkpointID: id, alignmentMs: msBetween(p.first, a.now())})
}

// cancelSkipped: barrier id on input means input skipped every older checkpoint it did not deliver.
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
	delete(a.arrived, id)
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
