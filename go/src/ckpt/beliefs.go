package ckpt

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
)

// What a worker believes from NATS, as proto/ckpt/v1/bus.proto rules it:
// terms, epochs and checkpoint ids come from the gRPC session only, and
// every control message and barrier is checked against them.

// MaxHeldControlMessages is how many control messages of unconfirmed
// (higher) terms are held; the oldest goes first.
const MaxHeldControlMessages = 64

// MaxCheckpointIDAhead bounds a plausible checkpoint id: at most this far
// above the highest id the session confirmed.
const MaxCheckpointIDAhead = 10000

// maxTrackedCheckpoints bounds the acknowledged and declined ids remembered per epoch.
const maxTrackedCheckpoints = 1024

type termVerdict int

const (
	termNow termVerdict = iota
	termHeld
	termStale
)

type heldMessage struct {
	term uint64
	msg  controlMessage
}

// termGate holds control messages of terms the session has not confirmed.
type termGate struct {
	confirmed uint64
	max       int
	held      []heldMessage
}

func newTermGate(confirmed uint64) *termGate {
	return &termGate{confirmed: confirmed, max: MaxHeldControlMessages}
}

// offer decides on one message; a held one may evict the oldest held one.
func (g *termGate) offer(term uint64, m controlMessage) (termVerdict, *controlMessage) {
	if term < g.confirmed {
		return termStale, nil
	}
	if term == g.confirmed {
		return termNow, nil
	}
	g.held = append(g.held, heldMessage{term, m})
	if len(g.held) > g.max {
		evicted := g.held[0].msg
		g.held = g.held[1:]
		return termHeld, &evicted
	}
	return termHeld, nil
}

// confirm raises the confirmed term: held messages of it are released in
// arrival order, all others dropped. A term not above changes nothing.
func (g *termGate) confirm(term uint64) (released, dropped []controlMessage) {
	if term <= g.confirmed {
		return nil, nil
	}
	g.confirmed = term
	for _, h := range g.held {
		if h.term == term {
			released = append(released, h.msg)
		} else {
			dropped = append(dropped, h.msg)
		}
	}
	g.held = nil
	return released, dropped
}

type ackState struct {
	pending  int
	accepted bool
	refused  bool
}

type completeVerdict int

const (
	completeCount completeVerdict = iota
	completeWait
	completeDrop
)

// abortRange: one checkpoint, or with upTo every one up to it.
type abortRange struct {
	checkpointID uint64
	upTo         bool
}

func (r abortRange) matches(id uint64) bool {
	return id == r.checkpointID || (r.upTo && id < r.checkpointID)
}

// checkpointBeliefs is the session's view of the job's checkpoints.
type checkpointBeliefs struct {
	epoch     uint64
	confirmed uint64
	taken     map[string]uint64
	acks      map[uint64]*ackState
	ackOrder  []uint64
	declined  map[uint64]bool
	declOrder []uint64
}

func newCheckpointBeliefs(epoch uint64) *checkpointBeliefs {
	return &checkpointBeliefs{epoch: epoch, taken: map[string]uint64{}, acks: map[uint64]*ackState{}, declined: map[uint64]bool{}}
}

func (b *checkpointBeliefs) enterEpoch(epoch uint64) {
	b.epoch = epoch
	b.acks = map[uint64]*ackState{}
	b.ackOrder = nil
	b.restored()
}

func (b *checkpointBeliefs) restored() {
	b.taken = map[string]uint64{}
	b.declined = map[uint64]bool{}
	b.declOrder = nil
}

func (b *checkpointBeliefs) confirm(id uint64) {
	if id >= 1 && id > b.confirmed {
		b.confirmed = id
	}
}

// confirmSession: a welcome's or restore's checkpoint id, and every id below its next one.
func (b *checkpointBeliefs) confirmSession(checkpointID, nextCheckpointID uint64) {
	b.confirm(checkpointID)
	if nextCheckpointID > 0 {
		b.confirm(nextCheckpointID - 1)
	}
}

func (b *checkpointBeliefs) plausible(id uint64) bool {
	return id >= 1 && id <= b.confirmed+MaxCheckpointIDAhead
}

func (b *checkpointBeliefs) takes(source string, id uint64) bool { return id > b.taken[source] }

func (b *checkpointBeliefs) took(source string, id uint64) {
	if id > b.taken[source] {
		b.taken[source] = id
	}
}

// mayDecline: once per id, and only above the highest confirmed id.
func (b *checkpointBeliefs) mayDecline(id uint64) bool {
	if id <= b.confirmed || b.declined[id] {
		return false
	}
	b.declined[id] = true
	b.declOrder = append(b.declOrder, id)
	if len(b.declOrder) > maxTrackedCheckpoints {
		delete(b.declined, b.declOrder[0])
		b.declOrder = b.declOrder[1:]
	}
	return true
}

func (b *checkpointBeliefs) ackSent(epoch, id uint64) {
	if epoch != b.epoch || id < 1 {
		return
	}
	s := b.acks[id]
	if s == nil {
		s = &ackState{}
		b.acks[id] = s
		b.ackOrder = append(b.ackOrder, id)
		if len(b.ackOrder) > maxTrackedCheckpoints {
			delete(b.acks, b.ackOrder[0])
			b.ackOrder = b.ackOrder[1:]
		}
	}
	s.pending++
}

func (b *checkpointBeliefs) ackAnswered(epoch, id uint64, accepted bool) {
	if accepted {
		b.confirm(id)
	}
	if epoch != b.epoch {
		return
	}
	s := b.acks[id]
	if s == nil {
		return
	}
	if s.pending > 0 {
		s.pending--
	}
	if accepted {
		s.accepted = true
	} else {
		s.refused = true
	}
}

func (b *checkpointBeliefs) completeVerdict(epoch, id uint64) completeVerdict {
	if epoch != b.epoch {
		return completeDrop
	}
	s := b.acks[id]
	if s == nil || s.refused {
		return completeDrop
	}
	if s.pending > 0 {
		return completeWait
	}
	if !s.accepted {
		return completeDrop
	}
	delete(b.acks, id)
	return completeCount
}

func (b *checkpointBeliefs) aborted(r abortRange) {
	if !r.upTo {
		delete(b.acks, r.checkpointID)
	}
}

func (b *checkpointBeliefs) abortRange(epoch, id uint64, upTo bool) (abortRange, bool) {
	if epoch != b.epoch || id < 1 {
		return abortRange{}, false
	}
	if upTo {
		highest := b.confirmed + MaxCheckpointIDAhead
		if id > highest {
			id = highest
		}
		return abortRange{id, true}, true
	}
	if !b.plausible(id) {
		return abortRange{}, false
	}
	return abortRange{id, false}, true
}

// controlMessage is one decoded control message.
type controlMessage struct {
	kind     string // trigger, complete, abort, recover
	trigger  *ckptpb.Trigger
	complete *ckptpb.CheckpointComplete
	abort    *ckptpb.CheckpointAbort
	recover  *ckptpb.Recover
}

func (m controlMessage) term() uint64 {
	switch m.kind {
	case "trigger":
		return m.trigger.Term
	case "complete":
		return m.complete.Term
	case "abort":
		return m.abort.Term
	default:
		return m.recover.Term
	}
}

func (m controlMessage) ids() (epoch, checkpointID uint64) {
	switch m.kind {
	case "trigger":
		return m.trigger.Epoch, m.trigger.CheckpointId
	case "complete":
		return m.complete.Epoch, m.complete.CheckpointId
	case "abort":
		return m.abort.Epoch, m.abort.CheckpointId
	default:
		return m.recover.Epoch, m.recover.CheckpointId
	}
}

func (m controlMessage) jobID() string {
	switch m.kind {
	case "trigger":
		return m.trigger.JobId
	case "complete":
		return m.complete.JobId
	case "abort":
		return m.abort.JobId
	default:
		return m.recover.JobId
	}
}

// decodeControl decodes the bytes of a control subject of kind.
func decodeControl(kind string, data []byte) (controlMessage, error) {
	m := controlMessage{kind: kind}
	var pm proto.Message
	switch kind {
	case "trigger":
		m.trigger = &ckptpb.Trigger{}
		pm = m.trigger
	case "complete":
		m.complete = &ckptpb.CheckpointComplete{}
		pm = m.complete
	case "abort":
		m.abort = &ckptpb.CheckpointAbort{}
		pm = m.abort
	case "recover":
		m.recover = &ckptpb.Recover{}
		pm = m.recover
	default:
		return m, fmt.Errorf("unknown control kind %q", kind)
	}
	if err := proto.Unmarshal(data, pm); err != nil {
		return m, err
	}
	return m, nil
}

// controlHandlers receive the control messages that passed every check.
type controlHandlers interface {
	onTrigger(t *ckptpb.Trigger)
	onComplete(c *ckptpb.CheckpointComplete)
	onAbort(a *ckptpb.CheckpointAbort, r abortRange)
	onRecover(r *ckptpb.Recover)
}

// controlIntake checks control messages against the session's beliefs.
// Not safe for concurrent use: its owner serialises the calls.
type controlIntake struct {
	jobID    string
	beliefs  *checkpointBeliefs
	terms    *termGate
	waiting  map[uint64]*ckptpb.CheckpointComplete
	handlers controlHandlers
	drops    *dropLog
}

func newControlIntake(jobID string, epoch, term uint64, h controlHandlers, drops *dropLog) *controlIntake {
	return &controlIntake{
		jobID: jobID, beliefs: newCheckpointBeliefs(epoch), terms: newTermGate(term),
		waiting: map[uint64]*ckptpb.CheckpointComplete{}, handlers: h, drops: drops,
	}
}

func (c *controlIntake) receive(kind string, data []byte) {
	m, err := decodeControl(kind, data)
	if err != nil {
		c.drops.drop(kind, "undecodable")
		return
	}
	if m.jobID() != c.jobID {
		c.drops.drop(kind, "other-job")
		return
	}
	verdict, evicted := c.terms.offer(m.term(), m)
	if evicted != nil {
		c.drops.drop(evicted.kind, "unconfirmed-term")
	}
	switch verdict {
	case termStale:
		c.drops.drop(kind, "stale-term")
	case termNow:
		c.apply(m)
	}
}

// confirmTerm: the session confirmed term; held messages of it are handled now.
func (c *controlIntake) confirmTerm(term uint64) {
	released, dropped := c.terms.confirm(term)
	for _, m := range dropped {
		c.drops.drop(m.kind, "unconfirmed-term")
	}
	for _, m := range released {
		c.apply(m)
	}
}

func (c *controlIntake) enterEpoch(epoch uint64) {
	c.beliefs.enterEpoch(epoch)
	for range c.waiting {
		c.drops.drop("complete", "other-epoch")
	}
	c.waiting = map[uint64]*ckptpb.CheckpointComplete{}
}

func (c *controlIntake) ackSent(epoch, id uint64) { c.beliefs.ackSent(epoch, id) }

func (c *controlIntake) ackAnswered(epoch, id uint64, accepted bool) {
	c.beliefs.ackAnswered(epoch, id, accepted)
	if w := c.waiting[id]; w != nil {
		delete(c.waiting, id)
		c.completeMsg(w)
	}
}

func (c *controlIntake) apply(m controlMessage) {
	switch m.kind {
	case "trigger":
		t := m.trigger
		if t.Epoch != c.beliefs.epoch {
			c.drops.drop("trigger", "other-epoch")
		} else if !c.beliefs.plausible(t.CheckpointId) {
			c.drops.drop("trigger", "implausible-id")
		} else {
			c.handlers.onTrigger(t)
		}
	case "complete":
		c.completeMsg(m.complete)
	case "abort":
		a := m.abort
		if a.Epoch != c.beliefs.epoch {
			c.drops.drop("abort", "other-epoch")
			return
		}
		upTo := a.Reason == ckptpb.AbortReason_ABORT_REASON_COORDINATOR_RESTART
		r, ok := c.beliefs.abortRange(a.Epoch, a.CheckpointId, upTo)
		if !ok {
			c.drops.drop("abort", "implausible-id")
			return
		}
		c.beliefs.aborted(r)
		if !r.upTo {
			if w := c.waiting[r.checkpointID]; w != nil {
				delete(c.waiting, r.checkpointID)
				c.drops.drop("complete", "aborted")
			}
		}
		c.handlers.onAbort(a, r)
	case "recover":
		c.handlers.onRecover(m.recover)
	}
}

func (c *controlIntake) completeMsg(m *ckptpb.CheckpointComplete) {
	if m.Epoch != c.beliefs.epoch {
		c.drops.drop("complete", "other-epoch")
		return
	}
	switch c.beliefs.completeVerdict(m.Epoch, m.CheckpointId) {
	case completeWait:
		c.waiting[m.CheckpointId] = m
	case completeDrop:
		c.drops.drop("complete", "not-acknowledged")
	default:
		c.handlers.onComplete(m)
	}
}

// dropLog counts dropped messages and logs them at most once per interval.
type dropLog struct {
	mu      sync.Mutex
	logf    func(format string, args ...interface{})
	every   time.Duration
	counts  map[string]int
	lastLog time.Time
	total   int
	onDrop  func(kind, reason string)
}

func newDropLog(logf func(string, ...interface{})) *dropLog {
	return &dropLog{logf: logf, every: 10 * time.Second, counts: map[string]int{}}
}

func (d *dropLog) drop(kind, reason string) {
	d.mu.Lock()
	key := kind + " " + reason
	d.counts[key]++
	d.total++
	cb := d.onDrop
	var line string
	if time.Since(d.lastLog) >= d.every {
		line = d.summaryLocked()
	}
	d.mu.Unlock()
	if cb != nil {
		cb(kind, reason)
	}
	if line != "" && d.logf != nil {
		d.logf("dropped messages: %s", line)
	}
}

func (d *dropLog) flush() {
	d.mu.Lock()
	line := d.summaryLocked()
	d.mu.Unlock()
	if line != "" && d.logf != nil {
		d.logf("dropped messages: %s", line)
	}
}

func (d *dropLog) summaryLocked() string {
	if len(d.counts) == 0 {
		return ""
	}
	keys := make([]string, 0, len(d.counts))
	for k := range d.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", d.counts[k], k)
	}
	d.counts = map[string]int{}
	d.lastLog = time.Now()
	return strings.Join(parts, ", ")
}
