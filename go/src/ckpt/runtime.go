package ckpt

import (
	"fmt"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
	nats "github.com/nats-io/nats.go"
)

// The runtime is what a worker runs once its session is welcomed: the task
// runners wired to the job graph, the data and control subscriptions,
// acknowledgements, and the coordinator's commands in epochs. Only the
// session moves it (welcomes, restores, starts); what arrives on NATS is
// checked against what the session confirmed and never moves it.

const maxHeldTriggers = 64

type taskResult struct {
	taskID   string
	snapshot *ckptpb.TaskSnapshot
	decline  string
}

type runtime struct {
	w       *Worker
	jobID   string
	prefix  string
	mode    alignMode
	nc      *nats.Conn
	backend stateBackend
	plane   *dataPlane
	logf    func(string, ...interface{})
	drops   *dropLog

	mu             sync.Mutex
	intake         *controlIntake
	runners        map[string]*runner
	order          []string
	sources        []*runner
	received       map[[2]string]uint64
	restoredEpoch  uint64
	restored       bool
	restoring      bool
	startRequested uint64
	started        bool
	heldTriggers   []*ckptpb.Trigger
	// failures: the failures reported in the current epoch, by task; sent again in every session resumed in it.
	failures     map[string]string
	triggerTimes map[uint64]uint64
	restoreGen   uint64
	closed       bool
	subs         []*nats.Subscription

	batches    *ackBatcher
	commands   chan *ckptpb.AttachResponse
	canceled   chan struct{}
	cancelOnce sync.Once
	closeOnce  sync.Once
	done       chan struct{}
}

// jobGraph: inputs and outputs of every task of the spec.
func jobGraph(spec *ckptpb.JobSpec) (inputs, outputs map[string][]string) {
	inputs, outputs = map[string][]string{}, map[string][]string{}
	for _, t := range spec.GetTasks() {
		if _, ok := inputs[t.TaskId]; !ok {
			inputs[t.TaskId] = nil
		}
		seen := map[string]bool{}
		for _, in := range t.Inputs {
			if seen[in] {
				continue
			}
			seen[in] = true
			inputs[t.TaskId] = append(inputs[t.TaskId], in)
			outputs[in] = append(outputs[in], t.TaskId)
		}
	}
	for k := range outputs {
		sort.Strings(outputs[k])
	}
	return inputs, outputs
}

func modeOf(m ckptpb.CheckpointMode) alignMode {
	switch m {
	case ckptpb.CheckpointMode_CHECKPOINT_MODE_UNALIGNED:
		return modeUnaligned
	case ckptpb.CheckpointMode_CHECKPOINT_MODE_AT_LEAST_ONCE:
		return modeAtLeastOnce
	}
	return modeAligned
}

func newRuntime(w *Worker, welcome *ckptpb.Welcome) (*runtime, error) {
	spec := welcome.GetSpec()
	if spec == nil {
		return nil, fmt.Errorf("MALFORMED: the welcome carries no job spec")
	}
	if welcome.ControlSubjectPrefix == "" {
		return nil, fmt.Errorf("MALFORMED: the welcome names no control subject prefix")
	}
	inputs, outputs := jobGraph(spec)
	rt := &runtime{
		w: w, jobID: w.opts.JobID, prefix: welcome.ControlSubjectPrefix, mode: modeOf(spec.GetPolicy().GetMode()),
		nc: w.nc, backend: w.backend, logf: w.logf,
		runners: map[string]*runner{}, received: map[[2]string]uint64{}, failures: map[string]string{}, triggerTimes: map[uint64]uint64{},
		commands: make(chan *ckptpb.AttachResponse, 1024), canceled: make(chan struct{}), done: make(chan struct{}),
	}
	if c := spec.GetPolicy().GetCompression(); c == ckptpb.StateCompression_STATE_COMPRESSION_LZ4 || c == ckptpb.StateCompression_STATE_COMPRESSION_BROTLI {
		w.logf("the job's policy asks for %s compression; the Go worker stores pieces uncompressed (STATE_COMPRESSION_NONE), which its handles say", c)
	}
	rt.drops = newDropLog(w.logf)
	rt.intake = newControlIntake(rt.jobID, welcome.Epoch, welcome.Term, rt, rt.drops)
	rt.intake.beliefs.confirmSession(welcome.LatestCheckpointId, welcome.NextCheckpointId)
	rt.plane = newDataPlane(w.nc, rt.prefix, func(err error) { rt.logf("publish failed: %v", err) })
	rt.plane.onDrop = rt.drops.drop
	rt.plane.onUnblocked = func(from string) {
		if r := rt.runners[from]; r != nil {
			r.signal()
		}
	}
	rt.plane.resetFlow(welcome.Epoch)
	alignedTimeout := time.Duration(spec.GetPolicy().GetAlignedCheckpointTimeoutMs()) * time.Millisecond
	for _, id := range w.order {
		task := w.tasks[id]
		ins, known := inputs[id]
		if !known {
			return nil, fmt.Errorf("UNKNOWN_TASK: task %s is not in job %s", id, rt.jobID)
		}
		_, isSource := task.(Source)
		_, isTask := task.(Task)
		if len(ins) == 0 && !isSource {
			return nil, fmt.Errorf("MALFORMED: task %s has no inputs in job %s, so it must implement Source", id, rt.jobID)
		}
		if len(ins) > 0 && !isTask {
			return nil, fmt.Errorf("MALFORMED: task %s reads %v in job %s, so it must implement Task", id, ins, rt.jobID)
		}
		r := newRunner(rt, id, task, ins, outputs[id], rt.mode, alignedTimeout)
		rt.plane.registerOutputs(id, outputs[id])
		rt.runners[id] = r
		rt.order = append(rt.order, id)
		if r.isSource {
			rt.sources = append(rt.sources, r)
		}
	}
	rt.batches = newAckBatcher(rt, len(rt.order), w.opts.AckBatch)
	if err := rt.subscribe(inputs); err != nil {
		rt.unsubscribe()
		return nil, err
	}
	go rt.runCommands()
	go rt.tickCredits()
	return rt, nil
}

// creditWindow is the window the worker's tasks announce for their inputs; 0: no credits.
func (rt *runtime) creditWindow() int64 {
	switch w := rt.w.opts.FlowControlWindow; {
	case w < 0:
		return 0
	case w == 0:
		return DefaultFlowControlWindow
	default:
		return int64(w)
	}
}

// tickCredits sends the credits of every reading task that are due, until the runtime is done.
func (rt *runtime) tickCredits() {
	ticker := time.NewTicker(creditTick)
	defer ticker.Stop()
	for {
		select {
		case <-rt.done:
			return
		case now := <-ticker.C:
			for _, id := range rt.order {
				r := rt.runners[id]
				if r.credits == nil {
					continue
				}
				r.mu.Lock()
				r.credits.tick(now)
				r.mu.Unlock()
			}
		}
	}
}

func (rt *runtime) subscribe(inputs map[string][]string) error {
	for _, kind := range []string{"trigger", "complete", "abort", "recover"} {
		kind := kind
		sub, err := rt.nc.Subscribe(rt.prefix+"."+kind, func(m *nats.Msg) {
			rt.mu.Lock()
			defer rt.mu.Unlock()
			if !rt.closed {
				rt.intake.receive(kind, m.Data)
			}
		})
		if err != nil {
			return fmt.Errorf("UNAVAILABLE: subscribe %s.%s: %v", rt.prefix, kind, err)
		}
		rt.subs = append(rt.subs, sub)
	}
	for _, id := range rt.order {
		if len(rt.runners[id].out.targets) > 0 {
			from := id
			subject := creditOutputsSubject(rt.prefix, from)
			sub, err := rt.nc.Subscribe(subject, func(m *nats.Msg) { rt.plane.onCredit(from, m.Subject, m.Data) })
			if err != nil {
				return fmt.Errorf("UNAVAILABLE: subscribe %s: %v", subject, err)
			}
			rt.subs = append(rt.subs, sub)
		}
		for _, in := range inputs[id] {
			edge := [2]string{in, id}
			sub, err := rt.nc.Subscribe(EdgeSubject(rt.prefix, in, id), func(m *nats.Msg) { rt.receiveEdge(edge, m) })
			if err != nil {
				return fmt.Errorf("UNAVAILABLE: subscribe edge %s -> %s: %v", in, id, err)
			}
			_ = sub.SetPendingLimits(-1, -1)
			rt.subs = append(rt.subs, sub)
		}
	}
	if err := rt.nc.Flush(); err != nil {
		return fmt.Errorf("UNAVAILABLE: NATS flush after subscribing: %v", err)
	}
	return nil
}

func (rt *runtime) unsubscribe() {
	for _, s := range rt.subs {
		_ = s.Unsubscribe()
	}
	rt.subs = nil
}

// receiveEdge: one message of an edge a local task reads.
func (rt *runtime) receiveEdge(edge [2]string, m *nats.Msg) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return
	}
	r := rt.runners[edge[1]]
	epoch, ok := epochOf(m.Header)
	isBarrier := m.Header.Get(BarrierHeader) == "1"
	kind := "record"
	if isBarrier {
		kind = "barrier"
	}
	current := rt.intake.beliefs.epoch
	if !ok {
		rt.drops.drop(kind, "unmarked")
		return
	}
	if epoch != current {
		rt.drops.drop(kind, "other-epoch")
		return
	}
	if !isBarrier {
		rt.received[edge]++
		rec := Record{Value: m.Data, From: edge[0]}
		if raw := m.Header.Get(KeyHeader); raw != "" {
			rec.Key, rec.HasKey = DecodeKey(raw), true
		}
		r.offerRecord(epoch, edge[0], rec)
		return
	}
	var b ckptpb.Barrier
	if err := proto.Unmarshal(m.Data, &b); err != nil {
		rt.drops.drop("barrier", "undecodable")
		return
	}
	switch {
	case b.JobId != rt.jobID:
		rt.drops.drop("barrier", "other-job")
		return
	case b.FromTaskId != edge[0]:
		rt.drops.drop("barrier", "other-sender")
		return
	case b.Epoch != current:
		rt.drops.drop("barrier", "other-epoch")
		return
	case !rt.intake.beliefs.plausible(b.CheckpointId):
		rt.drops.drop("barrier", "implausible-id")
		return
	}
	if got := rt.received[edge]; got != b.Records {
		msg := fmt.Sprintf("records lost on edge %s -> %s in epoch %d: %d sent before barrier %d, %d received",
			edge[0], edge[1], epoch, b.Records, b.CheckpointId, got)
		rt.logf("%s", msg)
		go rt.taskFailed(edge[1], epoch, msg)
		return
	}
	r.offerBarrier(epoch, edge[0], b.CheckpointId, b.SnapshotType)
}

// --- control messages (called with rt.mu held by the intake) ---------------

func (rt *runtime) onTrigger(t *ckptpb.Trigger) {
	if _, ok := rt.triggerTimes[t.CheckpointId]; !ok {
		rt.triggerTimes[t.CheckpointId] = t.TriggeredAtMs
		if len(rt.triggerTimes) > maxTrackedCheckpoints {
			for id := range rt.triggerTimes {
				if id+maxTrackedCheckpoints < t.CheckpointId {
					delete(rt.triggerTimes, id)
				}
			}
		}
	}
	if len(rt.sources) == 0 {
		return
	}
	epoch := rt.intake.beliefs.epoch
	if !rt.restored || rt.restoredEpoch != epoch {
		// Still restoring this epoch: the trigger is handled once the restore is done.
		rt.heldTriggers = append(rt.heldTriggers, t)
		if len(rt.heldTriggers) > maxHeldTriggers {
			rt.heldTriggers = rt.heldTriggers[1:]
			rt.drops.drop("trigger", "held-too-many")
		}
		return
	}
	// A trigger of the current epoch and a confirmed term implies the start.
	rt.startLocked(epoch)
	for _, r := range rt.sources {
		switch {
		case !rt.intake.beliefs.takes(r.id, t.CheckpointId):
			rt.cannotTake(r, t, "it took this trigger or a later one in the epoch")
		case r.trigger(epoch, t.CheckpointId, t.SnapshotType):
			rt.intake.beliefs.took(r.id, t.CheckpointId)
		default:
			rt.cannotTake(r, t, "the task is not running")
		}
	}
}

func (rt *runtime) cannotTake(r *runner, t *ckptpb.Trigger, why string) {
	if !rt.intake.beliefs.mayDecline(t.CheckpointId) {
		rt.drops.drop("trigger", "duplicate")
		return
	}
	msg := fmt.Sprintf("trigger of checkpoint %d cannot be taken: %s", t.CheckpointId, why)
	go rt.result(t.CheckpointId, t.Epoch, taskResult{taskID: r.id, decline: msg})
}

func (rt *runtime) onComplete(c *ckptpb.CheckpointComplete) {
	for _, id := range rt.order {
		rt.runners[id].complete(c.CheckpointId)
	}
}

func (rt *runtime) onAbort(a *ckptpb.CheckpointAbort, rng abortRange) {
	rt.batches.discard(rng)
	for _, id := range rt.order {
		rt.runners[id].abort(rng)
	}
}

func (rt *runtime) onRecover(r *ckptpb.Recover) {
	rt.logf("recover to checkpoint %d in epoch %d announced (the session moves the worker; now in epoch %d)",
		r.CheckpointId, r.Epoch, rt.intake.beliefs.epoch)
}

// --- the session's commands --------------------------------------------

func (rt *runtime) command(m *ckptpb.AttachResponse) {
	select {
	case rt.commands <- m:
	case <-rt.done:
	}
}

func (rt *runtime) runCommands() {
	for {
		select {
		case <-rt.done:
			return
		case m := <-rt.commands:
			switch b := m.Body.(type) {
			case *ckptpb.AttachResponse_Restore:
				rt.restore(b.Restore)
			case *ckptpb.AttachResponse_Start:
				rt.onStart(b.Start)
			case *ckptpb.AttachResponse_Discard:
				rt.discard(b.Discard)
			case *ckptpb.AttachResponse_ListState:
				rt.listState(b.ListState)
			}
		}
	}
}

// markCanceled: the job was canceled; Run returns.
func (rt *runtime) markCanceled(jobID string) {
	if jobID != rt.jobID && jobID != "" {
		rt.logf("cancel command of another job %q ignored", jobID)
		return
	}
	rt.cancelOnce.Do(func() {
		rt.logf("job %s canceled", rt.jobID)
		close(rt.canceled)
	})
}

// onResumed: a welcome after a reconnect. Tasks in its epoch carry on; any other epoch stops them.
//
// A failure written just before the old stream broke may never have arrived,
// and a coordinator that took over knows nothing of it: the failed task would
// decline every trigger and the job never recover. The failures of the epoch
// are sent again.
func (rt *runtime) onResumed(welcome *ckptpb.Welcome) {
	rt.mu.Lock()
	if welcome.ControlSubjectPrefix != rt.prefix {
		rt.logf("the coordinator names another control prefix %q (the worker keeps %q)", welcome.ControlSubjectPrefix, rt.prefix)
	}
	if welcome.Epoch != rt.intake.beliefs.epoch {
		rt.enterEpochLocked(welcome.Epoch)
	}
	rt.intake.beliefs.confirmSession(welcome.LatestCheckpointId, welcome.NextCheckpointId)
	rt.intake.confirmTerm(welcome.Term)
	epoch := rt.intake.beliefs.epoch
	again := make([]*ckptpb.TaskFailure, 0, len(rt.failures))
	for taskID, message := range rt.failures {
		again = append(again, &ckptpb.TaskFailure{TaskId: taskID, Epoch: epoch, Message: message})
	}
	rt.mu.Unlock()
	for _, f := range again {
		rt.logf("task %s: failure of epoch %d reported again in the resumed session", f.TaskId, epoch)
		rt.w.session.send(&ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Failure{Failure: f}})
	}
}

func (rt *runtime) enterEpochLocked(epoch uint64) {
	rt.restoreGen++
	rt.intake.enterEpoch(epoch)
	rt.started = false
	rt.restored = false
	rt.restoring = false
	// Triggers of the new epoch that arrived before its restore are kept (R1 in proto/PROTOCOL.md).
	kept := rt.heldTriggers[:0]
	for _, t := range rt.heldTriggers {
		if t.Epoch == epoch {
			kept = append(kept, t)
		}
	}
	rt.heldTriggers = kept
	rt.received = map[[2]string]uint64{}
	rt.failures = map[string]string{}
	rt.plane.resetFlow(epoch)
	rt.batches.discardOtherEpochs(epoch)
	for _, id := range rt.order {
		rt.runners[id].halt(phaseHalted)
	}
}

func (rt *runtime) restore(cmd *ckptpb.RestoreCommand) {
	rt.mu.Lock()
	if rt.closed || cmd.Epoch < rt.intake.beliefs.epoch {
		rt.mu.Unlock()
		return
	}
	epoch := cmd.Epoch
	rt.enterEpochLocked(epoch)
	rt.restoring = true
	gen := rt.restoreGen
	rt.intake.beliefs.confirmSession(cmd.CheckpointId, cmd.NextCheckpointId)
	rt.intake.confirmTerm(cmd.Term)
	rt.mu.Unlock()
	byTask := map[string]*ckptpb.TaskSnapshot{}
	for _, s := range cmd.Snapshots {
		byTask[s.TaskId] = s
	}
	var wg sync.WaitGroup
	ok := make([]bool, len(rt.order))
	for i, id := range rt.order {
		wg.Add(1)
		go func(i int, r *runner) {
			defer wg.Done()
			err := r.restore(epoch, cmd.CheckpointId, byTask[r.id], cmd.SourceJobId, rt.w.opts.AbandonCallAfter)
			if err == nil {
				ok[i] = true
				return
			}
			rt.mu.Lock()
			stale := gen != rt.restoreGen
			rt.mu.Unlock()
			if !stale {
				rt.logf("%v", err)
				rt.taskFailed(r.id, epoch, err.Error())
			}
		}(i, rt.runners[id])
	}
	wg.Wait()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if gen != rt.restoreGen || rt.closed {
		return
	}
	var ready []string
	for i, id := range rt.order {
		if ok[i] {
			ready = append(ready, id)
		}
	}
	rt.restoring = false
	rt.restored = true
	rt.restoredEpoch = epoch
	rt.logf("restored checkpoint %d in epoch %d (%d tasks)", cmd.CheckpointId, epoch, len(ready))
	if len(ready) > 0 {
		rt.w.session.send(&ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Ready{Ready: &ckptpb.TasksReady{Epoch: epoch, TaskIds: ready}}})
	}
	if rt.startRequested == epoch {
		rt.startLocked(epoch)
	}
	held := rt.heldTriggers
	rt.heldTriggers = nil
	for _, t := range held {
		if t.Epoch == epoch {
			rt.onTrigger(t)
		}
	}
}

func (rt *runtime) onStart(cmd *ckptpb.StartCommand) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if cmd.Epoch != rt.intake.beliefs.epoch {
		return
	}
	rt.startRequested = cmd.Epoch
	rt.startLocked(cmd.Epoch)
	rt.intake.confirmTerm(cmd.Term)
}

func (rt *runtime) startLocked(epoch uint64) {
	if epoch != rt.intake.beliefs.epoch || !rt.restored || rt.restoredEpoch != epoch || rt.started {
		return
	}
	rt.started = true
	for _, id := range rt.order {
		rt.runners[id].start(epoch)
	}
	rt.logf("started in epoch %d", epoch)
}

func (rt *runtime) discard(cmd *ckptpb.DiscardCommand) {
	if cmd.JobId != rt.jobID {
		rt.logf("discard command of another job %q ignored", cmd.JobId)
		return
	}
	if _, err := rt.backend.discard(rt.jobID, cmd.Uris); err != nil {
		rt.logf("discarding state pieces: %v", err)
	}
}

func (rt *runtime) listState(cmd *ckptpb.ListStateCommand) {
	if cmd.JobId != rt.jobID {
		rt.logf("list state command of another job %q ignored", cmd.JobId)
		return
	}
	pieces, err := rt.backend.list(rt.jobID, time.Duration(cmd.StaleUploadMs)*time.Millisecond)
	if err != nil {
		rt.logf("listing state pieces: %v", err)
		return
	}
	for start := 0; start < len(pieces); start += 256 {
		end := start + 256
		if end > len(pieces) {
			end = len(pieces)
		}
		listing := &ckptpb.StateListing{}
		for _, p := range pieces[start:end] {
			listing.Pieces = append(listing.Pieces, &ckptpb.StoredPiece{Uri: p.uri, ModifiedAtMs: uint64(p.modifiedAt.UnixMilli())})
		}
		rt.w.session.send(&ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_StateListing{StateListing: listing}})
	}
}

// --- what tasks report ---------------------------------------------------

func (rt *runtime) result(checkpointID, epoch uint64, res taskResult) {
	rt.batches.add(checkpointID, epoch, res)
}

func (rt *runtime) taskFailed(taskID string, epoch uint64, message string) {
	message = truncateUTF8(message, 4096)
	rt.mu.Lock()
	current := epoch == rt.intake.beliefs.epoch && !rt.closed
	if current {
		if rt.failures == nil {
			rt.failures = map[string]string{}
		}
		rt.failures[taskID] = message
	}
	rt.mu.Unlock()
	if !current {
		return
	}
	rt.w.session.send(&ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Failure{Failure: &ckptpb.TaskFailure{TaskId: taskID, Epoch: epoch, Message: message}}})
}

func (rt *runtime) startDelayMs(checkpointID uint64, startedAt time.Time) uint64 {
	rt.mu.Lock()
	at := rt.triggerTimes[checkpointID]
	rt.mu.Unlock()
	if at == 0 {
		return 0
	}
	d := startedAt.UnixMilli() - int64(at)
	if d < 0 {
		return 0
	}
	return uint64(d)
}

func (rt *runtime) epoch() uint64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.intake.beliefs.epoch
}

// runningEpoch: the epoch the tasks were restored and run in; 0 before.
func (rt *runtime) runningEpoch() uint64 {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.restored && rt.restoredEpoch == rt.intake.beliefs.epoch {
		return rt.restoredEpoch
	}
	return 0
}

func (rt *runtime) taskHealth() []*ckptpb.TaskHealth {
	if rt.runningEpoch() == 0 {
		return nil
	}
	now := time.Now()
	out := make([]*ckptpb.TaskHealth, 0, len(rt.order))
	for _, id := range rt.order {
		out = append(out, rt.runners[id].health(now))
	}
	return out
}

// NATS lost messages in flight (a disconnect or a slow consumer): fail a
// task now rather than at the next barrier's count.
func (rt *runtime) connectionLost(what string) {
	rt.mu.Lock()
	running := rt.restored && rt.restoredEpoch == rt.intake.beliefs.epoch && !rt.closed
	epoch := rt.intake.beliefs.epoch
	rt.mu.Unlock()
	if !running || len(rt.order) == 0 {
		return
	}
	rt.taskFailed(rt.order[0], epoch, what+": records and barriers in flight may be lost")
}

// close stops gracefully: unsubscribes, waits for uploads, sends what is batched, closes runners.
func (rt *runtime) close() { rt.closeOnce.Do(rt.shutdown) }

func (rt *runtime) shutdown() {
	rt.mu.Lock()
	rt.unsubscribe()
	rt.mu.Unlock()
	for _, id := range rt.order {
		rt.runners[id].uploads.Wait()
	}
	rt.batches.flushAll(5 * time.Second)
	rt.mu.Lock()
	rt.closed = true
	rt.mu.Unlock()
	for _, id := range rt.order {
		rt.runners[id].close()
	}
	close(rt.done)
	rt.drops.flush()
}

// truncateUTF8: at most max bytes of s, cut at a character boundary (a
// protobuf string must be valid UTF-8, or the message does not encode).
func truncateUTF8(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
