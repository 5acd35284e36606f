package ckpt

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	nats "github.com/nats-io/nats.go"
)

// JetStreamSinkOptions configure JetStreamSink.
type JetStreamSinkOptions struct {
	// Stream is the stream to write to. Required.
	Stream string
	// Subject is the subject records are published on; it must be a
	// subject of the stream. Required.
	Subject string
	// CreateStream creates the stream (subject Subject, duplicate window
	// DuplicateWindow) when it does not exist. Default false (the
	// TypeScript SDK's default is true; Go's zero value is false).
	CreateStream bool
	// DuplicateWindow of a created stream; it must exceed the longest time
	// between a checkpoint's completion and a re-publication after a
	// recovery. Default 10 minutes.
	DuplicateWindow time.Duration
	// PublishTimeout fails a commit when publications wait for their
	// acknowledgement and none arrives for this long. Default 5 s.
	PublishTimeout time.Duration
	// RetryFor: a commit whose publications no stream answered (its leader
	// is being elected after a NATS server restart) or that timed out is
	// published again, all of it (the message ids make that safe), with
	// backoff for up to this long before the task fails. Default 15 s.
	RetryFor time.Duration
	// MaxInFlight is the most publications waiting for their
	// acknowledgement at once. Default 256.
	MaxInFlight int
	// Map turns a record into the published payload. Default: the record's value.
	Map func(rec Record) []byte
	// Conn publishes on this connection instead of the worker's.
	Conn *nats.Conn
}

// Defaults of JetStreamSinkOptions.
const (
	DefaultSinkDuplicateWindow = 10 * time.Minute
	DefaultSinkPublishTimeout  = 5 * time.Second
	DefaultSinkRetryFor        = 15 * time.Second
	DefaultSinkMaxInFlight     = 256
)

// errSinkStopped: a publication stopped because its context ended.
var errSinkStopped = errors.New("sink stopped")

var sinkRetryBackoff = retryBackoff{initial: 250 * time.Millisecond, max: 2 * time.Second, multiplier: 2, jitter: 0.2}

// SinkMessageID is the message id of record index of checkpoint
// checkpointID of a sink task: "<job>/<task>/<checkpoint>/<index>", the
// same in every SDK.
func SinkMessageID(jobID, taskID string, checkpointID uint64, index int) string {
	return jobID + "/" + taskID + "/" + strconv.FormatUint(checkpointID, 10) + "/" + strconv.Itoa(index)
}

// JetStreamSink is a Task writing exactly once to a JetStream stream.
// Records of a checkpoint interval are staged in the task's snapshot and
// published only when a checkpoint that includes them completes (two-phase
// commit), each with the message id SinkMessageID, so that the stream drops
// a re-publication after a recovery. Nothing is visible in the stream
// before its checkpoint completes.
//
// A completed checkpoint's records are published in the background, one
// checkpoint after the other, while the task goes on taking records in. A
// group stays staged, and so in every snapshot taken meanwhile, until the
// stream has acknowledged all of it; a restore publishes it again (the ids
// drop what arrived). A publication that fails for good fails the task,
// and the job recovers. Use one per task.
//
// Its snapshot is the staging's encoding, described at sinkStaging (the
// TypeScript SDK's format).
func JetStreamSink(options JetStreamSinkOptions) Task {
	return &jetStreamSink{opts: options, staging: newSinkStaging(), publishing: closedChan()}
}

type jetStreamSink struct {
	opts JetStreamSinkOptions
	mu   sync.Mutex
	// staging is replaced at every restore; the ended epoch's publications
	// keep theirs.
	staging *sinkStaging
	// publishing is closed when the last commit queued is done.
	publishing chan struct{}
	ensured    bool
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// Process stages the record (a copy) for the checkpoint interval in progress.
func (k *jetStreamSink) Process(rec Record, ctx Context) error {
	payload := rec.Value
	if k.opts.Map != nil {
		payload = k.opts.Map(rec)
	}
	k.current().stage(append([]byte(nil), payload...))
	return nil
}

// Snapshot seals the staged records as the checkpoint's group and returns
// every pending group; nothing pending is an empty snapshot.
func (k *jetStreamSink) Snapshot(ctx SnapshotContext) ([]byte, error) {
	staging := k.current()
	staging.seal(ctx.CheckpointID())
	return staging.encode(ctx.JobID())
}

// Restore takes the snapshot's pending groups and publishes them before the
// task goes on: everything in a restored snapshot belongs to a completed
// checkpoint. They are published under the ids of the job that took the
// snapshot (a savepoint's, possibly).
func (k *jetStreamSink) Restore(state []byte, ctx Context) error {
	staging := newSinkStaging()
	if len(state) > 0 {
		decoded, err := decodeSinkStaging(state)
		if err != nil {
			return fmt.Errorf("restore sink %s: %w", ctx.TaskID(), err)
		}
		staging = decoded
	}
	k.mu.Lock()
	k.staging = staging
	k.publishing = closedChan()
	k.mu.Unlock()
	if err := k.ensure(ctx); err != nil {
		return err
	}
	origin := staging.origin
	if origin == "" {
		origin = ctx.JobID()
	}
	if err := k.commit(ctx, staging, math.MaxUint64, origin); err != nil {
		return err
	}
	if len(staging.pendingIDs()) > 0 {
		return fmt.Errorf("restore sink %s: stopped before its pending records were published", ctx.TaskID())
	}
	return nil
}

// OnCheckpointComplete queues the publication of the groups up to
// checkpointID behind the commits queued before.
func (k *jetStreamSink) OnCheckpointComplete(checkpointID uint64, ctx Context) error {
	k.mu.Lock()
	staging, previous := k.staging, k.publishing
	done := make(chan struct{})
	k.publishing = done
	k.mu.Unlock()
	go func() {
		defer close(done)
		select {
		case <-previous:
		case <-ctx.Done():
			return
		}
		if err := k.commit(ctx, staging, checkpointID, ctx.JobID()); err != nil && !isDone(ctx) {
			ctx.Fail(err)
		}
	}()
	return nil
}

func (k *jetStreamSink) current() *sinkStaging {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.staging
}

func isDone(ctx Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// ensure makes sure of the stream once (again after a failure).
func (k *jetStreamSink) ensure(ctx Context) error {
	if !k.opts.CreateStream {
		return nil
	}
	k.mu.Lock()
	ensured := k.ensured
	k.mu.Unlock()
	if ensured {
		return nil
	}
	window := k.opts.DuplicateWindow
	if window == 0 {
		window = DefaultSinkDuplicateWindow
	}
	spec := streamSpec{name: k.opts.Stream, subjects: []string{k.opts.Subject}, duplicateWindow: window}
	c, cancel := context.WithTimeout(ctx.Ctx(), k.timeout())
	defer cancel()
	if err := ensureStream(c, k.conn(ctx), spec, ctx.Logf); err != nil {
		return err
	}
	k.mu.Lock()
	k.ensured = true
	k.mu.Unlock()
	return nil
}

func (k *jetStreamSink) conn(ctx Context) *nats.Conn {
	if k.opts.Conn != nil {
		return k.opts.Conn
	}
	return ctx.NATS()
}

func (k *jetStreamSink) timeout() time.Duration {
	if k.opts.PublishTimeout > 0 {
		return k.opts.PublishTimeout
	}
	return DefaultSinkPublishTimeout
}

// commit publishes the pending groups of from up to upTo, in order, each
// dropped once the stream acknowledged all of it. It stops without error
// when ctx ends.
func (k *jetStreamSink) commit(ctx Context, from *sinkStaging, upTo uint64, jobID string) error {
	groups := from.committable(upTo)
	if len(groups) == 0 {
		return nil
	}
	if err := k.ensure(ctx); err != nil {
		return err
	}
	for _, g := range groups {
		if isDone(ctx) {
			return nil
		}
		err := k.publishGroup(ctx, jobID, g)
		if errors.Is(err, errSinkStopped) {
			// Not all acknowledged: the group stays pending.
			return nil
		}
		if err != nil {
			return err
		}
		from.drop(g.checkpointID)
	}
	return nil
}

// publishGroup publishes one checkpoint's records, again with backoff
// while no stream answers, for up to RetryFor.
func (k *jetStreamSink) publishGroup(ctx Context, jobID string, g stagingGroup) error {
	if k.opts.Stream == "" || k.opts.Subject == "" {
		return errors.New("jetstream sink: options Stream and Subject are required")
	}
	retryFor := k.opts.RetryFor
	if retryFor == 0 {
		retryFor = DefaultSinkRetryFor
	}
	maxInFlight := k.opts.MaxInFlight
	if maxInFlight <= 0 {
		maxInFlight = DefaultSinkMaxInFlight
	}
	taskID := ctx.TaskID()
	p := streamPublication{
		subject:     k.opts.Subject,
		payloads:    g.records,
		msgID:       func(i int) string { return SinkMessageID(jobID, taskID, g.checkpointID, i) },
		maxInFlight: maxInFlight,
		timeout:     k.timeout(),
	}
	until := time.Now().Add(retryFor)
	for attempt := 0; ; attempt++ {
		err := publishToStream(ctx.Ctx(), k.conn(ctx), p)
		if err == nil {
			return nil
		}
		if isDone(ctx) {
			return errSinkStopped
		}
		delay := sinkRetryBackoff.delay(attempt)
		transient := errors.Is(err, errNoStreamAnswered) || errors.Is(err, errNoAcknowledgement)
		if !transient || time.Now().Add(delay).After(until) {
			return fmt.Errorf("sink %s: publish checkpoint %d to stream %s: %w", taskID, g.checkpointID, k.opts.Stream, err)
		}
		ctx.Logf("sink publication of checkpoint %d not acknowledged (%v); publishing again", g.checkpointID, err)
		if !sleepCtx(ctx.Ctx(), delay) {
			return errSinkStopped
		}
	}
}
