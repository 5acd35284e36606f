package ckpt

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// Flow control, the writer's side (proto/PROTOCOL.md §7.5), as the
// TypeScript SDK's src/sdk/data-plane.ts does it. Once the reader of an
// output edge sent a credit in the current epoch, the edge is over its
// window when sent - processed >= window; a task with an output over its
// window takes no input (no record, no source message) until a credit makes
// room. Records and barriers are never held back here: what a task emits is
// published at once, so a barrier is never stuck behind unsent records. A
// reader that sends no credits is never waited for, and the rule lapses at
// every new epoch until the reader's first credit of it.

// MaxCreditWindow is the largest window a credit is taken to give.
const MaxCreditWindow = 1 << 20

// maxCreditBytes bounds the size of a credit message.
const maxCreditBytes = 256

// maxSafeInteger is JavaScript's Number.MAX_SAFE_INTEGER: the counts of a credit stay below it.
const maxSafeInteger = 1<<53 - 1

// producerFlow is the flow state of one writing task: how many of its outputs are over their window.
type producerFlow struct{ over int }

// edgeCredit is what the reader of an output edge last granted.
type edgeCredit struct {
	// epoch is the epoch of the reader's credits; flow control applies only while credited and in it.
	epoch     uint64
	credited  bool
	processed uint64
	window    uint64
	over      bool
}

// credit is one decoded credit message.
type credit struct {
	Epoch     uint64
	Processed uint64
	Window    uint64
}

// decodeCredit decodes {"epoch":E,"processed":N,"window":W} (non-negative
// integers below 2^53, a window of at least 1; other fields ignored), or
// says why the bytes are not a credit.
func decodeCredit(data []byte) (credit, string) {
	if len(data) == 0 || len(data) > maxCreditBytes {
		return credit{}, "a credit of " + strconv.Itoa(len(data)) + " bytes"
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		return credit{}, "a credit that is not a JSON object"
	}
	var c credit
	for _, f := range []struct {
		name string
		into *uint64
	}{{"epoch", &c.Epoch}, {"processed", &c.Processed}, {"window", &c.Window}} {
		n, ok := countOf(fields[f.name])
		if !ok {
			return credit{}, "a credit without a non-negative integer epoch and processed count and a positive window"
		}
		*f.into = n
	}
	if c.Window < 1 {
		return credit{}, "a credit without a non-negative integer epoch and processed count and a positive window"
	}
	return c, ""
}

// countOf reads a JSON number that is a non-negative safe integer (1e3 and 1000.0 count, as in JavaScript).
func countOf(raw json.RawMessage) (uint64, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] == '"' {
		return 0, false
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err != nil {
		return 0, false
	}
	if f < 0 || f > maxSafeInteger || f != float64(uint64(f)) {
		return 0, false
	}
	return uint64(f), true
}

// creditOutputsSubject is the wildcard of the credits for every output edge of from.
func creditOutputsSubject(prefix, from string) string { return CreditSubject(prefix, from, "*") }

// producer is the flow state of from; p.mu held.
func (p *dataPlane) producer(from string) *producerFlow {
	f := p.producers[from]
	if f == nil {
		f = &producerFlow{}
		p.producers[from] = f
	}
	return f
}

// blocked: an output of from is over its window, so from takes no input.
func (p *dataPlane) blocked(from string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.producers[from]
	return f != nil && f.over > 0
}

// resetFlow: the worker is in epoch from now on; flow control lapses on
// every edge until its reader sends a credit of that epoch, and no producer
// is blocked.
func (p *dataPlane) resetFlow(epoch uint64) {
	p.mu.Lock()
	p.flowEpoch = epoch
	for _, f := range p.producers {
		f.over = 0
	}
	for _, e := range p.out {
		e.credit = edgeCredit{}
	}
	p.mu.Unlock()
}

// countSent: one more record of e in its epoch; p.mu held.
func (e *outEdge) countSent() {
	e.sent++
	c := &e.credit
	if !c.over && c.credited && c.epoch == e.epoch && e.sent-c.processed >= c.window {
		c.over = true
		e.producer.over++
	}
}

// enterEpoch: e carries records of epoch from now on; its count starts
// over and a full window of an older epoch no longer blocks. p.mu held.
func (e *outEdge) enterEpoch(epoch uint64) {
	e.used, e.epoch, e.sent = true, epoch, 0
	if e.credit.over {
		e.credit.over = false
		e.producer.over--
	}
}

// onCredit takes a credit that arrived on subject for an output of from.
func (p *dataPlane) onCredit(from, subject string, data []byte) {
	head := CreditSubject(p.prefix, from, "")
	to := strings.TrimPrefix(subject, head)
	p.mu.Lock()
	e := p.out[[2]string{from, to}]
	if e == nil || to == subject {
		p.mu.Unlock()
		p.dropped("other-sender")
		return
	}
	c, why := decodeCredit(data)
	if why != "" {
		p.mu.Unlock()
		p.dropped("undecodable")
		return
	}
	if c.Epoch != p.flowEpoch || (e.used && c.Epoch < e.epoch) {
		p.mu.Unlock()
		p.dropped("other-epoch")
		return
	}
	wasBlocked := e.producer.over > 0
	if !e.used || c.Epoch > e.epoch {
		e.enterEpoch(c.Epoch)
	}
	cr := &e.credit
	if !cr.credited || cr.epoch != c.Epoch {
		*cr = edgeCredit{epoch: c.Epoch, credited: true, over: cr.over}
	}
	// A credit above what was sent is forged or confused: it counts as what was sent.
	processed := c.Processed
	if processed > e.sent {
		processed = e.sent
	}
	if processed > cr.processed {
		cr.processed = processed
	}
	cr.window = c.Window
	if cr.window > MaxCreditWindow {
		cr.window = MaxCreditWindow
	}
	over := e.sent-cr.processed >= cr.window
	if over != cr.over {
		cr.over = over
		if over {
			e.producer.over++
		} else {
			e.producer.over--
		}
	}
	unblocked := wasBlocked && e.producer.over == 0
	p.mu.Unlock()
	if unblocked && p.onUnblocked != nil {
		p.onUnblocked(from)
	}
}

func (p *dataPlane) dropped(reason string) {
	if p.onDrop != nil {
		p.onDrop("credit", reason)
	}
}
