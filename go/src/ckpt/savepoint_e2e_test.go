package ckpt

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"ckpt/ckptpb"
)

// An UNALIGNED job started from an ALIGNED job's savepoint reads the
// savepoint's pieces as plain state: they hold no in-flight records and do
// not say they do (StateHandle.in_flight_records, proto/PROTOCOL.md §12).
// The sums keep keyed state, the sink its own snapshot bytes, so both ways
// a piece without the marker is read are covered.

// spSum is e2eSum that tells the total of the keyed state it restored.
type spSum struct {
	e2eSum
	restored chan<- [2]uint64 // checkpoint id, total of its keys
}

func (s spSum) OnRestored(id uint64, _ []SourcePosition, ctx Context) error {
	var total uint64
	ctx.State().Range(func(key string, _ []byte) bool { total += decimal(ctx.State(), key); return true })
	s.restored <- [2]uint64{id, total}
	return nil
}

// spSink counts what it receives in state of its own ("count,sum"), not in its KeyedState.
type spSink struct {
	mu         sync.Mutex
	count, sum uint64
	snapshots  map[uint64][2]uint64
	committed  chan [2]uint64
	restored   chan [3]uint64 // checkpoint id, count, sum
}

func newSpSink() *spSink {
	return &spSink{snapshots: map[uint64][2]uint64{}, committed: make(chan [2]uint64, 1000), restored: make(chan [3]uint64, 10)}
}

func (s *spSink) Process(rec Record, _ Context) error {
	n, err := strconv.ParseUint(string(rec.Value), 10, 64)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.count++
	s.sum += n
	s.mu.Unlock()
	return nil
}

func (s *spSink) Snapshot(ctx SnapshotContext) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots[ctx.CheckpointID()] = [2]uint64{s.count, s.sum}
	return []byte(fmt.Sprintf("%d,%d", s.count, s.sum)), nil
}

func (s *spSink) Restore(state []byte, _ Context) error {
	var count, sum uint64
	if state != nil {
		parts := strings.Split(string(state), ",")
		if len(parts) != 2 {
			return fmt.Errorf("the sink's snapshot %q is not count,sum", state)
		}
		var err1, err2 error
		count, err1 = strconv.ParseUint(parts[0], 10, 64)
		sum, err2 = strconv.ParseUint(parts[1], 10, 64)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("the sink's snapshot %q is not count,sum", state)
		}
	}
	s.mu.Lock()
	s.count, s.sum = count, sum
	s.mu.Unlock()
	return nil
}

func (s *spSink) OnRestored(id uint64, _ []SourcePosition, _ Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.restored <- [3]uint64{id, s.count, s.sum}
	return nil
}

func (s *spSink) OnCheckpointComplete(id uint64, _ Context) error {
	s.mu.Lock()
	v, ok := s.snapshots[id]
	s.mu.Unlock()
	if ok {
		select {
		case s.committed <- v:
		default:
		}
	}
	return nil
}

func TestEndToEndUnalignedJobFromAnAlignedSavepoint(t *testing.T) {
	c := startCluster(t)
	state := "file://" + t.TempDir()
	tasks := []*ckptpb.TaskSpec{
		{TaskId: "src"}, {TaskId: "sum-0", Inputs: []string{"src"}}, {TaskId: "sum-1", Inputs: []string{"src"}},
		{TaskId: "sink", Inputs: []string{"sum-0", "sum-1"}},
	}
	policy := func(mode ckptpb.CheckpointMode) *ckptpb.CheckpointPolicy {
		return &ckptpb.CheckpointPolicy{IntervalMs: 150, TimeoutMs: 10000, Mode: mode, Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE}
	}
	// failures carries the restore failures the workers log: without them a bad read shows only as a job that never runs.
	failures := make(chan string, 100)
	type job struct {
		sink      *spSink
		sums      chan [2]uint64
		stop      []context.CancelFunc
		done      []chan error
		jobID     string
		sourceEnd uint64
	}
	start := func(jobID string, sourceEnd uint64) *job {
		j := &job{sink: newSpSink(), sums: make(chan [2]uint64, 20), jobID: jobID, sourceEnd: sourceEnd}
		for _, ids := range [][]string{{"src", "sum-0"}, {"sum-1", "sink"}} {
			w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: jobID, StateURI: state,
				Logf: func(f string, a ...interface{}) {
					line := fmt.Sprintf(f, a...)
					t.Logf("worker of %s: %s", jobID, line)
					if strings.Contains(line, "restore of task") {
						select {
						case failures <- line:
						default:
						}
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				var task interface{}
				switch id {
				case "src":
					task = e2eSource{limit: sourceEnd}
				case "sink":
					task = j.sink
				default:
					task = spSum{restored: j.sums}
				}
				if err := w.AddTask(id, task); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			j.stop, j.done = append(j.stop, cancel), append(j.done, done)
			t.Cleanup(cancel)
		}
		return j
	}
	// waitCommitted waits for a committed snapshot of the sink holding all of 1..n, exactly once.
	waitCommitted := func(j *job, n uint64) {
		t.Helper()
		deadline := time.After(40 * time.Second)
		for {
			select {
			case v := <-j.sink.committed:
				if v[0] > n || v[1] > n*(n+1)/2 {
					t.Fatalf("%s: a committed snapshot of the sink holds count %d sum %d, more than the source sent", j.jobID, v[0], v[1])
				}
				if v[0] == n {
					if v[1] != n*(n+1)/2 {
						t.Fatalf("%s: the sink committed count %d with sum %d, want %d", j.jobID, v[0], v[1], n*(n+1)/2)
					}
					return
				}
			case line := <-failures:
				t.Fatalf("%s: a restore failed: %s", j.jobID, line)
			case <-deadline:
				t.Fatalf("%s: no committed snapshot of the sink holds all %d records", j.jobID, n)
			}
		}
	}
	waitEnded := func(j *job) {
		t.Helper()
		for _, done := range j.done {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Run after the job was canceled: %v", j.jobID, err)
				}
			case <-time.After(15 * time.Second):
				t.Fatalf("%s: Run did not return after the job was canceled", j.jobID)
			}
		}
	}

	// The ALIGNED job runs its source to the end and stops with a savepoint holding every record.
	const first, second = 1500, 3000
	c.submit(t, &ckptpb.JobSpec{JobId: "go-sp-aligned", Tasks: tasks, Policy: policy(ckptpb.CheckpointMode_CHECKPOINT_MODE_ALIGNED)})
	a := start("go-sp-aligned", first)
	waitCommitted(a, first)
	sp, err := c.client.TriggerSavepoint(context.Background(), &ckptpb.TriggerSavepointRequest{JobId: "go-sp-aligned", Stop: true})
	if err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	if sp.Savepoint == nil || sp.Checkpoint.GetState() != ckptpb.CheckpointState_CHECKPOINT_STATE_COMPLETED {
		t.Fatalf("savepoint not taken: %v", sp.Checkpoint)
	}
	savepointID := sp.Checkpoint.CheckpointId
	waitEnded(a)

	// The UNALIGNED job starts from it: every task restores the savepoint's state, none fails reading it.
	_, err = c.client.SubmitJob(context.Background(), &ckptpb.SubmitJobRequest{
		Spec:          &ckptpb.JobSpec{JobId: "go-sp-unaligned", Tasks: tasks, Policy: policy(ckptpb.CheckpointMode_CHECKPOINT_MODE_UNALIGNED)},
		FromSavepoint: &ckptpb.SavepointRef{JobId: "go-sp-aligned", CheckpointId: savepointID},
	})
	if err != nil {
		t.Fatalf("submit from the savepoint: %v", err)
	}
	b := start("go-sp-unaligned", second)
	wantSum := uint64(first * (first + 1) / 2)
	var sumsTotal uint64
	for got := 0; got < 3; {
		select {
		case r := <-b.sink.restored:
			if r[0] != savepointID || r[1] != first || r[2] != wantSum {
				t.Fatalf("the sink restored checkpoint %d with count %d sum %d, want savepoint %d with %d, %d", r[0], r[1], r[2], savepointID, first, wantSum)
			}
			got++
		case r := <-b.sums:
			if r[0] != savepointID {
				t.Fatalf("a sum restored checkpoint %d, want savepoint %d", r[0], savepointID)
			}
			sumsTotal += r[1]
			got++
		case line := <-failures:
			t.Fatalf("a restore from the ALIGNED job's savepoint failed: %s", line)
		case <-time.After(30 * time.Second):
			t.Fatal("the UNALIGNED job's tasks did not restore from the savepoint")
		}
	}
	if sumsTotal != wantSum {
		t.Fatalf("the sums restored a total of %d, want %d", sumsTotal, wantSum)
	}
	// It goes on from there: the source resumes after the savepoint's offset, and every record reaches the sink once.
	waitCommitted(b, second)

	// A recovery of the UNALIGNED job reads its own pieces (marked where they hold in-flight records).
	b.stop[1]()
	<-b.done[1]
	b2 := &job{sink: newSpSink(), sums: make(chan [2]uint64, 20), jobID: b.jobID}
	w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: b.jobID, StateURI: state,
		Logf: func(f string, a ...interface{}) {
			t.Logf("worker of %s (restarted): "+f, append([]interface{}{b.jobID}, a...)...)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask("sum-1", spSum{restored: b2.sums}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask("sink", b2.sink); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case r := <-b2.sink.restored:
		if r[0] <= savepointID || r[1] != second || r[2] != uint64(second*(second+1)/2) {
			t.Fatalf("the restarted sink restored checkpoint %d with count %d sum %d, want a checkpoint after %d with %d, %d", r[0], r[1], r[2], savepointID, second, second*(second+1)/2)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the restarted worker did not restore")
	}

	if _, err := c.client.CancelJob(context.Background(), &ckptpb.CancelJobRequest{JobId: b.jobID}); err != nil {
		t.Fatal(err)
	}
	waitEnded(&job{jobID: b.jobID, done: []chan error{b.done[0], done}})
}
