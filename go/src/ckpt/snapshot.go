package ckpt

import (
	"fmt"
	"sort"
	"time"

	"ckpt/ckptpb"
)

// A task's snapshot of one checkpoint: taken in its loop (the task's
// declines, its state, the barrier passed on to every output), then
// stored and acknowledged in the background.

type openSnapshot struct {
	state       []byte
	taken       snapshotTaken
	inFlight    []inFlightRecord
	inFlightLen uint64
}

type snapshotTaken struct {
	checkpointID uint64
	epoch        uint64
	gen          uint64
	positions    []*ckptpb.SourcePosition
	processed    uint64
	startedAt    time.Time
	syncMs       uint64
	alignmentMs  uint64
	// inFlight: the piece holds in-flight records besides the state (StateHandle.in_flight_records).
	inFlight bool
}

// snapshot takes the task's snapshot of checkpointID at this point of its
// input, forwards the barrier to every output, and uploads in the background.
// With open (unaligned: the job's mode, or an aligned checkpoint that timed
// out), the upload waits for finishUnaligned, and the piece stores the
// in-flight records recorded until then.
func (r *runner) snapshot(gen, checkpointID, alignmentMs uint64, startedAt time.Time, open bool) error {
	r.mu.Lock()
	if gen != r.gen {
		r.mu.Unlock()
		return nil
	}
	tctx, epoch := r.tctx, r.epoch
	processed := r.processed
	r.processed = 0
	var positions []*ckptpb.SourcePosition
	for in, off := range r.positions {
		positions = append(positions, &ckptpb.SourcePosition{Input: in, Offset: off})
	}
	sort.Slice(positions, func(i, j int) bool { return positions[i].Input < positions[j].Input })
	began := time.Now()
	r.running[checkpointID] = began
	typ := r.types[checkpointID]
	for id := range r.types {
		if id <= checkpointID {
			delete(r.types, id)
		}
	}
	r.mu.Unlock()
	if typ == ckptpb.SnapshotType_SNAPSHOT_TYPE_UNSPECIFIED {
		typ = ckptpb.SnapshotType_SNAPSHOT_TYPE_FULL
	}
	if !r.isSource {
		positions = nil
	}
	sctx := snapshotContext{tctx, checkpointID}
	declined := ""
	if d, ok := r.task.(Decliner); ok {
		if err := safeCall(func() error { declined = d.Decline(sctx); return nil }); err != nil {
			declined = err.Error()
		}
	}
	var state []byte
	var serr error
	if declined == "" {
		if s, ok := r.task.(Snapshotter); ok {
			serr = safeCall(func() error { var e error; state, e = s.Snapshot(sctx); return e })
		} else {
			state = encodeKeyedState(tctx.state)
		}
	}
	r.rt.plane.publishBarrier(r.id, r.out.targets, r.rt.jobID, checkpointID, epoch, typ)
	taken := snapshotTaken{checkpointID: checkpointID, epoch: epoch, gen: gen, positions: positions, processed: processed,
		startedAt: startedAt, syncMs: msBetween(began, time.Now()), alignmentMs: alignmentMs}
	if declined != "" || serr != nil {
		msg := declined
		if serr != nil {
			msg = fmt.Sprintf("snapshot failed: %v", serr)
		}
		r.mu.Lock()
		delete(r.running, checkpointID)
		r.mu.Unlock()
		r.rt.result(checkpointID, epoch, taskResult{taskID: r.id, decline: msg})
		return nil
	}
	if open {
		r.mu.Lock()
		if gen == r.gen {
			r.open[checkpointID] = &openSnapshot{state: state, taken: taken}
			delete(r.running, checkpointID)
		}
		r.mu.Unlock()
		return nil
	}
	r.upload(taken, state, 0, uint64(len(state)))
	return nil
}

func (r *runner) finishUnaligned(gen, checkpointID, alignmentMs uint64) {
	r.mu.Lock()
	o := r.open[checkpointID]
	delete(r.open, checkpointID)
	if o == nil || gen != r.gen {
		r.mu.Unlock()
		return
	}
	r.running[checkpointID] = time.Now()
	r.mu.Unlock()
	o.taken.alignmentMs = alignmentMs
	o.taken.inFlight = true
	r.upload(o.taken, encodeUnaligned(o.state, o.inFlight), o.inFlightLen, uint64(len(o.state)))
}

func (r *runner) upload(t snapshotTaken, data []byte, inFlightBytes, stateBytes uint64) {
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		began := time.Now()
		handle := &ckptpb.StateHandle{}
		var err error
		if len(data) > 0 {
			handle, err = r.rt.backend.put(pieceKey{r.rt.jobID, r.id, t.checkpointID, t.epoch}, data)
			if err == nil && t.inFlight {
				handle.InFlightRecords = true
			}
		}
		r.mu.Lock()
		delete(r.running, t.checkpointID)
		current := t.gen == r.gen
		for _, rng := range r.aborted {
			if rng.matches(t.checkpointID) {
				current = false
			}
		}
		if current && err == nil {
			r.acked[t.checkpointID] = true
		}
		r.mu.Unlock()
		if !current {
			return
		}
		if err != nil {
			r.rt.logf("task %s: snapshot upload of checkpoint %d failed; declining: %v", r.id, t.checkpointID, err)
			r.rt.result(t.checkpointID, t.epoch, taskResult{taskID: r.id, decline: fmt.Sprintf("snapshot upload failed: %v", err)})
			return
		}
		persisted := uint64(0)
		if len(data) > 0 {
			persisted = handle.SizeBytes
		}
		snap := &ckptpb.TaskSnapshot{
			TaskId:       r.id,
			State:        handle,
			Positions:    t.positions,
			SnapshotType: ckptpb.SnapshotType_SNAPSHOT_TYPE_FULL,
			Metrics: &ckptpb.SnapshotMetrics{
				AlignmentMs:      t.alignmentMs,
				SyncMs:           t.syncMs,
				AsyncMs:          msBetween(began, time.Now()),
				StateSizeBytes:   stateBytesOf(handle, stateBytes),
				PersistedBytes:   persisted,
				InFlightBytes:    inFlightBytes,
				ProcessedRecords: t.processed,
				StartDelayMs:     r.rt.startDelayMs(t.checkpointID, t.startedAt),
			},
		}
		r.rt.result(t.checkpointID, t.epoch, taskResult{taskID: r.id, snapshot: snap})
	}()
}

// A handle without a uri must report no state.
func stateBytesOf(h *ckptpb.StateHandle, stateBytes uint64) uint64 {
	if h.Uri == "" {
		return 0
	}
	return stateBytes
}
