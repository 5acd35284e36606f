package ckpt

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"ckpt/ckptpb"

	"google.golang.org/grpc"
)

// End-to-end checks of flow control as a writer and of the alignment
// timeout, with Go workers against a real coordinator, etcd and
// nats-server (skipped, saying why, when one is missing).

// countedSource is e2eSource counting the records it emitted.
type countedSource struct {
	e2eSource
	emitted *int64
}

func (s countedSource) Handle(msg SourceMessage, ctx Context) error {
	if err := s.e2eSource.Handle(msg, ctx); err != nil {
		return err
	}
	atomic.AddInt64(s.emitted, 1)
	return nil
}

// slowSink is e2eSink taking delay per record, counting the records it processed.
type slowSink struct {
	*e2eSink
	delay     time.Duration
	processed *int64
}

func (s slowSink) Process(rec Record, ctx Context) error {
	time.Sleep(s.delay)
	atomic.AddInt64(s.processed, 1)
	return s.e2eSink.Process(rec, ctx)
}

func newE2ESink() *e2eSink {
	return &e2eSink{snapshots: map[uint64][2]uint64{}, committed: make(chan [2]uint64, 1000), restored: make(chan [3]uint64, 10)}
}

// runWorker runs a worker of tasks until the returned function stops it (and waits for Run).
// All workers of a job share the state directory stateDir.
func runWorker(t *testing.T, c *cluster, jobID, stateDir string, window int, tasks map[string]interface{}) func() {
	t.Helper()
	w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: jobID,
		StateURI: "file://" + stateDir, FlowControlWindow: window,
		Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	for id, task := range tasks {
		if err := w.AddTask(id, task); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return")
		}
	}
}

func queryClient(t *testing.T, c *cluster) ckptpb.CheckpointQueryClient {
	conn, err := grpc.Dial(c.coordinator, grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return ckptpb.NewCheckpointQueryClient(conn)
}

// completedCheckpoints lists the job's completed checkpoints, newest first as the coordinator lists them.
func completedCheckpoints(t *testing.T, q ckptpb.CheckpointQueryClient, jobID string) []uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := q.ListCheckpoints(ctx, &ckptpb.ListCheckpointsRequest{JobId: jobID, PageSize: 1000})
	if err != nil {
		t.Fatalf("list checkpoints: %v", err)
	}
	var ids []uint64
	for _, cp := range res.Checkpoints {
		if cp.State == ckptpb.CheckpointState_CHECKPOINT_STATE_COMPLETED {
			ids = append(ids, cp.CheckpointId)
		}
	}
	return ids
}

// handleOf is the state handle of task in checkpoint id's manifest (nil when not retained).
func handleOf(t *testing.T, q ckptpb.CheckpointQueryClient, jobID string, id uint64, task string) *ckptpb.StateHandle {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := q.GetCheckpoint(ctx, &ckptpb.GetCheckpointRequest{JobId: jobID, CheckpointId: id})
	if err != nil {
		return nil
	}
	for _, s := range res.GetManifest().GetTasks() {
		if s.TaskId == task {
			return s.State
		}
	}
	return nil
}

// A Go writer whose Go reader is slow keeps at most about the reader's
// window of records unprocessed on the edge, and checkpoints still complete.
func TestEndToEndWriterWaitsForCredits(t *testing.T) {
	c := startCluster(t)
	const jobID, window = "go-flow", 64
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "slow", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 200, TimeoutMs: 10000,
			Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	var emitted, processed int64
	dir := t.TempDir()
	stopSrc := runWorker(t, c, jobID, dir, 0, map[string]interface{}{"src": countedSource{e2eSource{limit: 1 << 40}, &emitted}})
	defer stopSrc()
	stopSlow := runWorker(t, c, jobID, dir, window, map[string]interface{}{"slow": slowSink{newE2ESink(), time.Millisecond, &processed}})
	defer stopSlow()
	deadline := time.Now().Add(45 * time.Second)
	for atomic.LoadInt64(&processed) < 50 {
		if time.Now().After(deadline) {
			t.Fatal("the reader processed nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the writer sent before the reader's first credit reached it is not held back: let the reader catch up.
	for atomic.LoadInt64(&emitted)-atomic.LoadInt64(&processed) > window {
		if time.Now().After(deadline) {
			t.Fatalf("the reader never came within a window of the writer: %d emitted, %d processed",
				atomic.LoadInt64(&emitted), atomic.LoadInt64(&processed))
		}
		time.Sleep(10 * time.Millisecond)
	}
	maxAhead := int64(0)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		// processed first: emitted only grows, so the difference is never understated.
		p := atomic.LoadInt64(&processed)
		if ahead := atomic.LoadInt64(&emitted) - p; ahead > maxAhead {
			maxAhead = ahead
		}
	}
	t.Logf("emitted %d, processed %d, at most %d ahead", atomic.LoadInt64(&emitted), atomic.LoadInt64(&processed), maxAhead)
	// The writer stops at window; a source message may emit past it, and the reader counts before it processes.
	if maxAhead > 2*window {
		t.Fatalf("the writer ran %d records ahead of its reader, whose window is %d", maxAhead, window)
	}
	q := queryClient(t, c)
	for len(completedCheckpoints(t, q, jobID)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint completed under backpressure")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An aligned checkpoint whose alignment takes longer than the policy's
// aligned_checkpoint_timeout_ms is taken unaligned: the slow reader's
// piece holds the records queued ahead of the barrier and says so
// (in_flight_records); a restore of that ALIGNED job reads them back, and
// the reader ends with every record exactly once.
func TestEndToEndAlignedCheckpointTimesOut(t *testing.T) {
	c := startCluster(t)
	const jobID, limit = "go-aligned-timeout", 2500
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "slow", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 200, TimeoutMs: 20000, Mode: ckptpb.CheckpointMode_CHECKPOINT_MODE_ALIGNED,
			AlignedCheckpointTimeoutMs: 50, Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	var emitted, processed int64
	dir := t.TempDir()
	stopSrc := runWorker(t, c, jobID, dir, 0, map[string]interface{}{"src": countedSource{e2eSource{limit: limit}, &emitted}})
	defer stopSrc()
	sink := newE2ESink()
	stopSlow := runWorker(t, c, jobID, dir, 1024, map[string]interface{}{"slow": slowSink{sink, 2 * time.Millisecond, &processed}})
	q := queryClient(t, c)
	var withInFlight uint64
	deadline := time.Now().Add(30 * time.Second)
	for withInFlight == 0 {
		for _, id := range completedCheckpoints(t, q, jobID) {
			if h := handleOf(t, q, jobID, id, "slow"); h.GetInFlightRecords() {
				withInFlight = id
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no completed checkpoint has a piece of the slow reader with in-flight records")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("checkpoint %d timed out into an unaligned one at the slow reader (%d of %d records processed)", withInFlight, atomic.LoadInt64(&processed), limit)
	stopSlow()

	sink2 := newE2ESink()
	stopSlow2 := runWorker(t, c, jobID, dir, 1024, map[string]interface{}{"slow": slowSink{sink2, 2 * time.Millisecond, &processed}})
	defer stopSlow2()
	select {
	case r := <-sink2.restored:
		// The source is far ahead of the reader: every checkpoint since the first timed out there too.
		if h := handleOf(t, q, jobID, r[0], "slow"); !h.GetInFlightRecords() {
			t.Fatalf("restored checkpoint %d, whose piece of the reader holds no in-flight records", r[0])
		}
		t.Logf("restored checkpoint %d (count %d) with in-flight records", r[0], r[1])
	case <-time.After(30 * time.Second):
		t.Fatal("the new reader did not restore")
	}
	wantCount, wantSum := uint64(limit), uint64(limit*(limit+1)/2)
	for end := time.After(60 * time.Second); ; {
		select {
		case v := <-sink2.committed:
			if v[0] > wantCount || v[1] > wantSum {
				t.Fatalf("a committed snapshot holds count %d sum %d, more than the source sent", v[0], v[1])
			}
			if v[0] == wantCount {
				if v[1] != wantSum {
					t.Fatalf("count %d with sum %d, want %d", v[0], v[1], wantSum)
				}
				return
			}
		case <-end:
			t.Fatalf("no committed snapshot of the reader holds all %d records", limit)
		}
	}
}
