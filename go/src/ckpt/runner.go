package ckpt

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"ckpt/ckptpb"
)

// A runner runs one task: one loop goroutine per epoch (generation) that
// processes records (or source messages), aligns barriers, snapshots and
// forwards barriers, and runs the checkpoint hooks, one at a time.

type runnerPhase string

const (
	phaseIdle      runnerPhase = "idle"
	phaseRestoring runnerPhase = "restoring"
	phaseActive    runnerPhase = "active"
	phaseHalted    runnerPhase = "halted"
	phaseFailed    runnerPhase = "failed"
	phaseClosed    runnerPhase = "closed"
)

type work func() error

type runner struct {
	rt       *runtime
	id       string
	task     interface{}
	proc     Task
	src      Source
	isSource bool
	inputs   []string
	out      *router
	mode     alignMode

	mu        sync.Mutex
	phase     runnerPhase
	gen       uint64
	epoch     uint64
	tctx      *taskContext
	aligner   *inputAligner
	control   []work
	positions map[string]uint64
	processed uint64
	busySince time.Time
	running   map[uint64]time.Time
	acked     map[uint64]bool
	types     map[uint64]ckptpb.SnapshotType
	aborted   []abortRange // recent aborts: an upload that ends after its checkpoint's abort is not acknowledged
	open      map[uint64]*openSnapshot
	srcCh     chan SourceMessage
	started   bool
	wake      chan struct{}
	loopDone  chan struct{}
	uploads   sync.WaitGroup
	// credits of the task's inputs (flow control); nil without inputs or when disabled.
	credits *readerCredits
}

func newRunner(rt *runtime, id string, task interface{}, inputs, outputs []string, mode alignMode, alignedTimeout time.Duration) *runner {
	r := &runner{
		rt: rt, id: id, task: task, inputs: inputs, out: newRouter(id, outputs), mode: mode,
		phase: phaseIdle, positions: map[string]uint64{}, running: map[uint64]time.Time{},
		acked: map[uint64]bool{}, types: map[uint64]ckptpb.SnapshotType{}, open: map[uint64]*openSnapshot{}, wake: make(chan struct{}, 1),
	}
	if s, ok := task.(Source); ok && len(inputs) == 0 {
		r.src, r.isSource = s, true
	} else if t, ok := task.(Task); ok {
		r.proc = t
	}
	if len(inputs) > 0 {
		r.aligner = newInputAligner(inputs, mode, alignedTimeout)
		if window := rt.creditWindow(); window > 0 {
			r.credits = newReaderCredits(rt.nc, rt.prefix, id, inputs, window, func(err error) { rt.logf("credit not sent: %v", err) })
		}
	}
	return r
}

func (r *runner) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *runner) current(gen uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return gen == r.gen && r.phase != phaseClosed
}

func (r *runner) accepting(epoch uint64) bool {
	return (r.phase == phaseActive || r.phase == phaseRestoring) && epoch == r.epoch
}

// offerRecord queues a record of input sent in epoch.
func (r *runner) offerRecord(epoch uint64, input string, rec Record) {
	r.mu.Lock()
	if r.accepting(epoch) && r.aligner != nil {
		r.aligner.offer(input, inputItem{record: rec})
	}
	r.mu.Unlock()
	r.signal()
}

// offerBarrier queues barrier checkpointID of input sent in epoch.
func (r *runner) offerBarrier(epoch uint64, input string, checkpointID uint64, typ ckptpb.SnapshotType) {
	r.mu.Lock()
	if r.accepting(epoch) && r.aligner != nil {
		r.noteTypeLocked(checkpointID, typ)
		savepoint := typ == ckptpb.SnapshotType_SNAPSHOT_TYPE_SAVEPOINT
		r.aligner.offer(input, inputItem{barrier: true, checkpointID: checkpointID, savepoint: savepoint})
	}
	r.mu.Unlock()
	r.signal()
}

// trigger asks a source to snapshot between two messages; false when it does not run in epoch.
func (r *runner) trigger(epoch, checkpointID uint64, typ ckptpb.SnapshotType) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.phase != phaseActive || epoch != r.epoch {
		return false
	}
	r.noteTypeLocked(checkpointID, typ)
	gen := r.gen
	r.pushLocked(func() error {
		return r.snapshot(gen, checkpointID, 0, time.Now(), false)
	})
	return true
}

// noteTypeLocked remembers what a checkpoint's trigger or first barrier
// asked for (a savepoint, say), to pass it on with the task's barrier.
func (r *runner) noteTypeLocked(checkpointID uint64, typ ckptpb.SnapshotType) {
	if _, ok := r.types[checkpointID]; !ok && len(r.types) < maxTrackedCheckpoints {
		r.types[checkpointID] = typ
	}
}

func (r *runner) pushLocked(w work) {
	r.control = append(r.control, w)
	r.signal()
}

// complete: checkpoint id committed; the task's hook runs when it acknowledged it.
func (r *runner) complete(checkpointID uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	acked := r.acked[checkpointID]
	// A committed checkpoint subsumes the older ones.
	for id := range r.acked {
		if id <= checkpointID {
			delete(r.acked, id)
		}
	}
	if !acked {
		return
	}
	l, ok := r.task.(CompletionListener)
	if !ok || r.phase != phaseActive {
		return
	}
	ctx := r.tctx
	r.pushLocked(func() error { return l.OnCheckpointComplete(checkpointID, ctx) })
}

// abort: checkpoint (or every one up to it) will not complete.
func (r *runner) abort(rng abortRange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.aligner != nil {
		r.aligner.cancel(rng.checkpointID, rng.upTo)
	}
	for id := range r.open {
		if rng.matches(id) {
			delete(r.open, id)
		}
	}
	for id := range r.running {
		if rng.matches(id) {
			delete(r.running, id)
		}
	}
	for id := range r.acked {
		if rng.matches(id) {
			delete(r.acked, id)
		}
	}
	r.aborted = append(r.aborted, rng)
	if len(r.aborted) > 64 {
		r.aborted = r.aborted[1:]
	}
	if l, ok := r.task.(AbortListener); ok && r.phase == phaseActive {
		ctx := r.tctx
		r.pushLocked(func() error { return l.OnCheckpointAbort(rng.checkpointID, ctx) })
	} else {
		r.signal()
	}
}

// halt stops the task's work of the current epoch at once and drops what it queued.
func (r *runner) halt(phase runnerPhase) {
	r.mu.Lock()
	r.haltLocked(phase)
	r.mu.Unlock()
	r.signal()
}

func (r *runner) haltLocked(phase runnerPhase) {
	if r.phase == phaseClosed {
		return
	}
	r.gen++
	if r.tctx != nil {
		r.tctx.cancel()
	}
	r.control = nil
	if r.aligner != nil {
		r.aligner.reset()
	}
	if r.credits != nil {
		r.credits.stop()
	}
	r.srcCh = nil
	r.started = false
	r.busySince = time.Time{}
	r.running = map[uint64]time.Time{}
	r.open = map[uint64]*openSnapshot{}
	r.acked = map[uint64]bool{}
	r.aborted = nil
	r.types = map[uint64]ckptpb.SnapshotType{}
	r.phase = phase
}

// restore brings the task back in epoch from its manifest entry (nil: empty state).
func (r *runner) restore(epoch, checkpointID uint64, snap *ckptpb.TaskSnapshot, sourceJobID string, abandonAfter time.Duration) error {
	r.mu.Lock()
	if r.phase == phaseClosed {
		r.mu.Unlock()
		return errors.New("SHUTTING_DOWN: the task is closed")
	}
	r.haltLocked(phaseRestoring)
	r.epoch = epoch
	gen := r.gen
	oldLoop := r.loopDone
	r.mu.Unlock()
	r.signal()
	if oldLoop != nil {
		select {
		case <-oldLoop:
		case <-time.After(abandonAfter):
			r.rt.logf("task %s: a call of the previous epoch has not returned after %s; abandoned", r.id, abandonAfter)
		}
	}
	fail := func(err error) error {
		r.mu.Lock()
		if gen == r.gen {
			r.haltLocked(phaseFailed)
		}
		r.mu.Unlock()
		return err
	}
	var data []byte
	if h := snap.GetState(); h != nil && h.Uri != "" {
		var err error
		data, err = r.rt.backend.get(h, r.rt.jobID, sourceJobID)
		if err != nil {
			return fail(fmt.Errorf("restore of task %s from checkpoint %d failed: %v", r.id, checkpointID, err))
		}
	}
	var inFlight []inFlightRecord
	// A piece that says it holds in-flight records has them whatever the
	// job's mode now; one without the marker only where unmarkedHoldsInFlight
	// is certain that it was stored before the marker existed.
	_, ownState := r.task.(Restorer)
	how := restoreHow{jobID: r.rt.jobID, sourceJobID: sourceJobID, unaligned: r.mode == modeUnaligned && len(r.inputs) > 0, keyed: !ownState}
	if data != nil && (snap.GetState().GetInFlightRecords() || unmarkedHoldsInFlight(snap.GetState(), data, how)) {
		state, records, err := decodeUnaligned(data)
		if err != nil {
			return fail(fmt.Errorf("restore of task %s: %v", r.id, err))
		}
		data, inFlight = state, records
	}
	cctx, cancel := context.WithCancel(context.Background())
	tctx := &taskContext{r: r, gen: gen, epoch: epoch, state: newMapState(), ctx: cctx, cancel: cancel}
	var positions []SourcePosition
	for _, p := range snap.GetPositions() {
		positions = append(positions, SourcePosition{Input: p.Input, Offset: p.Offset})
	}
	if err := r.restoreState(tctx, data); err != nil {
		cancel()
		return fail(fmt.Errorf("restore of task %s failed: %v", r.id, err))
	}
	if l, ok := r.task.(RestoreListener); ok {
		if err := safeCall(func() error { return l.OnRestored(checkpointID, positions, tctx) }); err != nil {
			cancel()
			return fail(fmt.Errorf("restore of task %s failed: %v", r.id, err))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if gen != r.gen {
		cancel()
		return errors.New("STALE_EPOCH: restore superseded")
	}
	r.tctx = tctx
	r.positions = map[string]uint64{}
	for _, p := range positions {
		r.positions[p.Input] = p.Offset
	}
	r.processed = 0
	r.phase = phaseActive
	restored := map[string]int64{}
	for _, rec := range inFlight {
		r.aligner.offer(rec.from, inputItem{record: Record{Value: rec.value, Key: rec.key, HasKey: rec.hasKey, From: rec.from}})
		restored[rec.from]++
	}
	if r.credits != nil {
		r.credits.begin(epoch, restored)
	}
	done := make(chan struct{})
	r.loopDone = done
	go r.loop(gen, tctx, done)
	return nil
}

func (r *runner) restoreState(tctx *taskContext, data []byte) error {
	if rs, ok := r.task.(Restorer); ok {
		var state []byte
		if len(data) > 0 {
			state = data
		}
		return safeCall(func() error { return rs.Restore(state, tctx) })
	}
	s, err := decodeKeyedState(data)
	if err != nil {
		return err
	}
	tctx.state = s
	return nil
}

// start lets a source read, once the job started in epoch.
func (r *runner) start(epoch uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.isSource || r.phase != phaseActive || epoch != r.epoch || r.started || r.tctx == nil {
		return
	}
	r.started = true
	ch := make(chan SourceMessage, 256)
	r.srcCh = ch
	var positions []SourcePosition
	for in, off := range r.positions {
		positions = append(positions, SourcePosition{Input: in, Offset: off})
	}
	sort.Slice(positions, func(i, j int) bool { return positions[i].Input < positions[j].Input })
	tctx := r.tctx
	go func() {
		err := safeCall(func() error { return r.src.Read(tctx, positions, ch) })
		if err != nil && tctx.ctx.Err() == nil {
			r.fail(tctx.gen, fmt.Errorf("read: %v", err))
		}
	}()
	r.signal()
}

func (r *runner) loop(gen uint64, tctx *taskContext, done chan struct{}) {
	defer close(done)
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		r.mu.Lock()
		if gen != r.gen || r.phase == phaseClosed {
			r.mu.Unlock()
			return
		}
		// An output over its window: the task takes no input (no record,
		// no source message) until a credit makes room; checkpoints go on.
		blocked := len(r.out.targets) > 0 && r.rt.plane.blocked(r.id)
		w := r.nextLocked(gen, blocked)
		src := r.srcCh
		var due <-chan time.Time
		if w == nil && r.aligner != nil {
			if at, ok := r.aligner.nextTimeout(); ok {
				if timer == nil {
					timer = time.NewTimer(time.Until(at))
				} else {
					resetTimer(timer, time.Until(at))
				}
				due = timer.C
			}
		}
		r.mu.Unlock()
		if w != nil {
			r.call(gen, w)
			continue
		}
		if blocked {
			src = nil
		}
		select {
		case <-r.wake:
		case <-due:
		case <-tctx.ctx.Done():
			return
		case msg := <-src:
			r.call(gen, func() error { return r.handleSource(tctx, msg) })
		}
	}
}

// nextLocked is the task's next piece of work, or nil; a blocked task
// takes no record, only what is not a record (snapshots, in-flight
// records, finishes, cancels, the control work).
func (r *runner) nextLocked(gen uint64, blocked bool) work {
	if r.phase != phaseActive {
		return nil
	}
	if len(r.control) > 0 {
		w := r.control[0]
		r.control = r.control[1:]
		return w
	}
	if r.aligner == nil {
		return nil
	}
	var act alignAction
	var ok bool
	if blocked {
		act, ok = r.aligner.nextControl()
	} else {
		act, ok = r.aligner.next()
	}
	if !ok {
		return nil
	}
	tctx := r.tctx
	switch act.kind {
	case actProcess:
		r.processed++
		if r.credits != nil {
			r.credits.processed(act.input)
		}
		if len(act.inFlightFor) > 0 {
			for _, id := range act.inFlightFor {
				if o := r.open[id]; o != nil {
					o.inFlight = append(o.inFlight, inFlightRecord{from: act.input, key: act.record.Key, hasKey: act.record.HasKey, value: act.record.Value})
					o.inFlightLen += uint64(len(act.record.Value))
				}
			}
		}
		rec := act.record
		if r.proc == nil {
			return nil
		}
		return func() error { return r.proc.Process(rec, tctx) }
	case actSnapshot:
		return func() error {
			return r.snapshot(gen, act.checkpointID, act.alignmentMs, act.startedAt, act.unaligned)
		}
	case actInFlight:
		if o := r.open[act.checkpointID]; o != nil {
			for _, rec := range act.records {
				o.inFlight = append(o.inFlight, inFlightRecord{from: act.input, key: rec.Key, hasKey: rec.HasKey, value: rec.Value})
				o.inFlightLen += uint64(len(rec.Value))
			}
		}
		return func() error { return nil }
	case actFinish:
		id, alignmentMs := act.checkpointID, act.alignmentMs
		return func() error { r.finishUnaligned(gen, id, alignmentMs); return nil }
	case actCancel:
		id, reason := act.checkpointID, act.reason
		delete(r.open, id)
		delete(r.running, id)
		epoch := r.epoch
		return func() error {
			r.rt.result(id, epoch, taskResult{taskID: r.id, decline: "barrier alignment cancelled: " + reason})
			return nil
		}
	}
	return nil
}

func (r *runner) handleSource(tctx *taskContext, msg SourceMessage) error {
	r.mu.Lock()
	r.processed++
	r.mu.Unlock()
	if err := r.src.Handle(msg, tctx); err != nil {
		return err
	}
	r.mu.Lock()
	if tctx.gen == r.gen {
		r.positions[msg.Input] = msg.Offset
	}
	r.mu.Unlock()
	return nil
}

// call runs one piece of the task's work, timing it for the heartbeats.
func (r *runner) call(gen uint64, w work) {
	r.mu.Lock()
	if gen == r.gen {
		r.busySince = time.Now()
	}
	r.mu.Unlock()
	err := safeCall(w)
	r.mu.Lock()
	if gen == r.gen {
		r.busySince = time.Time{}
	}
	r.mu.Unlock()
	if err != nil {
		r.fail(gen, err)
	}
}

func safeCall(f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return f()
}

// fail fails the task in generation gen: it halts, and the job recovers.
func (r *runner) fail(gen uint64, err error) {
	r.mu.Lock()
	if gen != r.gen || r.phase == phaseClosed || r.phase == phaseFailed {
		r.mu.Unlock()
		return
	}
	epoch := r.epoch
	r.haltLocked(phaseFailed)
	r.mu.Unlock()
	r.signal()
	r.rt.logf("task %s failed in epoch %d: %v", r.id, epoch, err)
	r.rt.taskFailed(r.id, epoch, fmt.Sprintf("task %s failed: %v", r.id, err))
}

func (r *runner) health(now time.Time) *ckptpb.TaskHealth {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &ckptpb.TaskHealth{TaskId: r.id}
	if !r.busySince.IsZero() {
		h.BusyMs = msBetween(r.busySince, now)
	}
	var oldest time.Time
	for id, since := range r.running {
		if oldest.IsZero() || since.Before(oldest) {
			oldest, h.SnapshotCheckpointId = since, id
		}
	}
	if !oldest.IsZero() {
		h.SnapshotMs = msBetween(oldest, now)
	}
	return h
}

func (r *runner) close() {
	r.halt(phaseClosed)
	r.mu.Lock()
	done := r.loopDone
	r.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
}
