// Command ckpt-conformance-worker runs the tasks CKPT_TASKS describes with
// the Go worker library, as the conformance contract in
// test/conformance/README.md says: a counting source, a keyed sum and a
// summing sink, which publish JSON reports of their restores and committed
// snapshots to CKPT_REPORT_SUBJECT.
//
//	CKPT_COORDINATORS=127.0.0.1:7070 CKPT_NATS_URL=nats://127.0.0.1:4222 CKPT_JOB=j \
//	CKPT_TASKS='{"src":{"kind":"source"},"sink":{"kind":"sink"}}' CKPT_STATE=file:///tmp/s \
//	CKPT_REPORT_SUBJECT=reports ckpt-conformance-worker
//
// CKPT_WORKER_ID names the worker; CKPT_MAX_MESSAGE_BYTES, the
// coordinators' message limit when set below its default, keeps every
// acknowledgement below half of it.
//
// It exits 0 when the job is canceled or on SIGTERM/SIGINT (after a
// graceful stop), 1 when the worker fails, 2 for a bad environment.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"ckpt"
)

const counterInput = "counter"

// behaviour is one task's entry of CKPT_TASKS.
type behaviour struct {
	Kind              string  `json:"kind"`
	Rate              *uint64 `json:"rate"`
	Limit             *uint64 `json:"limit"`
	Keys              *uint64 `json:"keys"`
	DeclineCheckpoint *uint64 `json:"declineCheckpoint"`
	HangAtRecord      *uint64 `json:"hangAtRecord"`
	ProcessDelayMs    *uint64 `json:"processDelayMs"`
}

type report struct {
	Task       string `json:"task"`
	Event      string `json:"event"`
	Epoch      uint64 `json:"epoch"`
	Checkpoint uint64 `json:"checkpoint"`
	Count      uint64 `json:"count"`
	Sum        uint64 `json:"sum"`
}

type values struct{ count, sum uint64 }

// base is what every behaviour does alike: reports, declines, hangs.
type base struct {
	id      string
	b       behaviour
	subject string
	logger  *log.Logger

	mu         sync.Mutex
	pending    map[uint64]values
	declined   bool
	firstEpoch uint64
	hasFirst   bool
	handled    uint64
	hung       bool
}

func (t *base) publish(ctx ckpt.Context, r report) {
	data, _ := json.Marshal(r)
	if err := ctx.NATS().Publish(t.subject, data); err != nil {
		t.logger.Printf("task %s: report not published: %v", t.id, err)
	}
}

// pace takes processDelayMs for a record (a slow reader).
func (t *base) pace() {
	if t.b.ProcessDelayMs != nil && *t.b.ProcessDelayMs > 0 {
		time.Sleep(time.Duration(*t.b.ProcessDelayMs) * time.Millisecond)
	}
}

// hang blocks forever at the hangAtRecord-th record of the first epoch the process runs the task in.
func (t *base) hang(ctx ckpt.Context) {
	t.mu.Lock()
	if !t.hasFirst {
		t.hasFirst, t.firstEpoch = true, ctx.Epoch()
	}
	if t.b.HangAtRecord == nil || t.hung || ctx.Epoch() != t.firstEpoch {
		t.mu.Unlock()
		return
	}
	t.handled++
	if t.handled != *t.b.HangAtRecord {
		t.mu.Unlock()
		return
	}
	t.hung = true
	t.mu.Unlock()
	t.logger.Printf("task %s: hanging at record %d by behaviour", t.id, t.handled)
	<-make(chan struct{})
}

// decline declines checkpoint declineCheckpoint once; otherwise it records the snapshot's values.
func (t *base) snapshotAt(id uint64, v values) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.b.DeclineCheckpoint != nil && *t.b.DeclineCheckpoint == id && !t.declined {
		t.declined = true
		return "declined by behaviour"
	}
	t.pending[id] = v
	return ""
}

func (t *base) OnCheckpointComplete(id uint64, ctx ckpt.Context) error {
	t.mu.Lock()
	v, ok := t.pending[id]
	for p := range t.pending {
		if p <= id {
			delete(t.pending, p)
		}
	}
	t.mu.Unlock()
	if ok {
		t.publish(ctx, report{Task: t.id, Event: "committed", Epoch: ctx.Epoch(), Checkpoint: id, Count: v.count, Sum: v.sum})
	}
	return nil
}

func (t *base) OnCheckpointAbort(id uint64, ctx ckpt.Context) error {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
	return nil
}

func (t *base) restored(ctx ckpt.Context, checkpoint uint64, v values) {
	t.mu.Lock()
	t.pending = map[uint64]values{}
	t.mu.Unlock()
	t.publish(ctx, report{Task: t.id, Event: "restored", Epoch: ctx.Epoch(), Checkpoint: checkpoint, Count: v.count, Sum: v.sum})
}

// source counts n = 1, 2, 3, ... keyed by n mod keys.
type source struct {
	*base
	rate, limit, keys uint64
	mu                sync.Mutex
	last              uint64
}

func (s *source) OnRestored(checkpoint uint64, positions []ckpt.SourcePosition, ctx ckpt.Context) error {
	var off uint64
	for _, p := range positions {
		if p.Input == counterInput {
			off = p.Offset
		}
	}
	s.mu.Lock()
	s.last = off
	s.mu.Unlock()
	s.restored(ctx, checkpoint, values{off, off})
	return nil
}

func (s *source) Read(ctx ckpt.Context, positions []ckpt.SourcePosition, out chan<- ckpt.SourceMessage) error {
	var from uint64
	for _, p := range positions {
		if p.Input == counterInput {
			from = p.Offset
		}
	}
	started := time.Now()
	for n := from; s.limit == 0 || n < s.limit; {
		if s.rate > 0 {
			due := started.Add(time.Duration(float64(n-from) * float64(time.Second) / float64(s.rate)))
			if wait := time.Until(due); wait > time.Millisecond {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return nil
				}
			}
		}
		n++
		select {
		case out <- ckpt.SourceMessage{Input: counterInput, Offset: n, Value: n}:
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func (s *source) Handle(msg ckpt.SourceMessage, ctx ckpt.Context) error {
	s.hang(ctx)
	n := msg.Value.(uint64)
	s.mu.Lock()
	s.last = msg.Offset
	s.mu.Unlock()
	return ctx.Emit([]byte(strconv.FormatUint(n, 10)), ckpt.ByKey(strconv.FormatUint(n%s.keys, 10)))
}

func (s *source) Decline(ctx ckpt.SnapshotContext) string {
	s.mu.Lock()
	last := s.last
	s.mu.Unlock()
	return s.snapshotAt(ctx.CheckpointID(), values{last, last})
}

// stateValues sums a keyed state's decimal values.
func stateValues(st ckpt.KeyedState) values {
	var v values
	st.Range(func(_ string, value []byte) bool {
		n, _ := strconv.ParseUint(string(value), 10, 64)
		v.count++
		v.sum += n
		return true
	})
	return v
}

func addTo(st ckpt.KeyedState, key string, n uint64) {
	old, _ := st.Get(key)
	cur, _ := strconv.ParseUint(string(old), 10, 64)
	st.Set(key, []byte(strconv.FormatUint(cur+n, 10)))
}

// sum adds n to keyed state k and passes the record on by key.
type sum struct{ *base }

func (s *sum) Process(rec ckpt.Record, ctx ckpt.Context) error {
	s.hang(ctx)
	s.pace()
	n, err := strconv.ParseUint(string(rec.Value), 10, 64)
	if err != nil {
		return fmt.Errorf("record %q is not a count", rec.Value)
	}
	addTo(ctx.State(), rec.Key, n)
	return ctx.Emit(rec.Value, ckpt.ByKey(rec.Key))
}

func (s *sum) Decline(ctx ckpt.SnapshotContext) string {
	return s.snapshotAt(ctx.CheckpointID(), stateValues(ctx.State()))
}

func (s *sum) OnRestored(checkpoint uint64, _ []ckpt.SourcePosition, ctx ckpt.Context) error {
	s.restored(ctx, checkpoint, stateValues(ctx.State()))
	return nil
}

// sink keeps the count and sum of the records it received.
type sink struct{ *base }

func sinkValues(st ckpt.KeyedState) values {
	get := func(k string) uint64 {
		b, _ := st.Get(k)
		n, _ := strconv.ParseUint(string(b), 10, 64)
		return n
	}
	return values{get("count"), get("sum")}
}

func (s *sink) Process(rec ckpt.Record, ctx ckpt.Context) error {
	s.hang(ctx)
	s.pace()
	n, err := strconv.ParseUint(string(rec.Value), 10, 64)
	if err != nil {
		return fmt.Errorf("record %q is not a count", rec.Value)
	}
	addTo(ctx.State(), "count", 1)
	addTo(ctx.State(), "sum", n)
	return nil
}

func (s *sink) Decline(ctx ckpt.SnapshotContext) string {
	return s.snapshotAt(ctx.CheckpointID(), sinkValues(ctx.State()))
}

func (s *sink) OnRestored(checkpoint uint64, _ []ckpt.SourcePosition, ctx ckpt.Context) error {
	s.restored(ctx, checkpoint, sinkValues(ctx.State()))
	return nil
}

func parseTasks(text string) (map[string]behaviour, error) {
	var raw map[string]behaviour
	dec := json.NewDecoder(strings.NewReader(text))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("CKPT_TASKS is not a JSON object of task id -> behaviour: %v", err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("CKPT_TASKS names no task")
	}
	for id, b := range raw {
		switch b.Kind {
		case "source", "sum", "sink":
		default:
			return nil, fmt.Errorf("CKPT_TASKS.%s.kind must be \"source\", \"sum\" or \"sink\", got %q", id, b.Kind)
		}
		if b.Keys != nil && *b.Keys < 1 {
			return nil, fmt.Errorf("CKPT_TASKS.%s.keys must be at least 1", id)
		}
	}
	return raw, nil
}

func orDefault(p *uint64, d uint64) uint64 {
	if p == nil {
		return d
	}
	return *p
}

func taskOf(b *base) interface{} {
	switch b.b.Kind {
	case "source":
		return &source{base: b, rate: orDefault(b.b.Rate, 2000), limit: orDefault(b.b.Limit, 0), keys: orDefault(b.b.Keys, 16)}
	case "sum":
		return &sum{b}
	default:
		return &sink{b}
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	logger := log.New(os.Stderr, "ckpt-conformance-worker ", log.LstdFlags|log.Lmicroseconds)
	need := func(name string) (string, bool) {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			logger.Printf("%s is not set", name)
			return "", false
		}
		return v, true
	}
	coordinators, ok1 := need("CKPT_COORDINATORS")
	natsURL, ok2 := need("CKPT_NATS_URL")
	jobID, ok3 := need("CKPT_JOB")
	tasksText, ok4 := need("CKPT_TASKS")
	state, ok5 := need("CKPT_STATE")
	subject, ok6 := need("CKPT_REPORT_SUBJECT")
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return 2
	}
	tasks, err := parseTasks(tasksText)
	if err != nil {
		logger.Print(err)
		return 2
	}
	// The coordinators' message limit, when set below its default: acknowledgements stay below half of it.
	maxAck := 0
	if v := strings.TrimSpace(os.Getenv("CKPT_MAX_MESSAGE_BYTES")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			logger.Printf("CKPT_MAX_MESSAGE_BYTES must be a positive integer, got %q", v)
			return 2
		}
		maxAck = n / 2
	}
	w, err := ckpt.NewWorker(ckpt.Options{
		Coordinators: strings.Split(coordinators, ","),
		NATSURL:      natsURL,
		JobID:        jobID,
		WorkerID:     strings.TrimSpace(os.Getenv("CKPT_WORKER_ID")),
		StateURI:     state,
		Logger:       logger,
		// A hung call is abandoned soon after a recovery, so that the restore does not wait long for it.
		AbandonCallAfter: 2 * time.Second,
		MaxAckBytes:      maxAck,
	})
	if err != nil {
		logger.Print(err)
		return 2
	}
	ids := make([]string, 0, len(tasks))
	for id := range tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		b := &base{id: id, b: tasks[id], subject: subject, logger: logger, pending: map[uint64]values{}}
		if err := w.AddTask(id, taskOf(b)); err != nil {
			logger.Print(err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := w.Run(ctx); err != nil {
		logger.Printf("the worker failed: %v", err)
		return 1
	}
	return 0
}
