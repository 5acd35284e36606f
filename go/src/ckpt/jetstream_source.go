package ckpt

import (
	"context"
	"errors"
	"fmt"
	"time"

	nats "github.com/nats-io/nats.go"
)

// JetStreamSourceOptions configure JetStreamSource.
type JetStreamSourceOptions struct {
	// Stream is the stream to read. Required.
	Stream string
	// Subject reads only this subject (a filter). Default: every subject
	// of the stream. Against nats-server before 2.10, the source reads
	// every subject and skips the others itself: the server's filter can
	// turn slow there (see serverFiltersSlowly).
	Subject string
	// CreateStream creates the stream (with Subject as its subject, or
	// "<Stream>.>" without one) when it does not exist. Default false.
	CreateStream bool
	// Map decides what to emit for one message. Default: its payload, to
	// every downstream task. An error fails the task.
	Map func(msg *nats.Msg, ctx Context) ([]Emission, error)
	// BatchSize is the number of messages pulled per request. Default 256.
	BatchSize int
	// FetchWait is how long a pull request waits for messages. After one
	// that found none, the source checks that its consumer still exists and
	// recreates it where it stopped if not (the server holding it went
	// away, or dropped it while the task was busy). Default 5 s, at least
	// 100 ms.
	FetchWait time.Duration
	// ReopenFor is how long a source recreates consumers that fail without
	// reading anything before it fails (and the job recovers). Default 60 s.
	ReopenFor time.Duration
	// Conn reads on this connection instead of the worker's.
	Conn *nats.Conn
}

// Emission is one record a mapping hook emits.
type Emission struct {
	Value []byte
	// Route says where it goes (ToTask, ByKey); the zero value sends it
	// to every downstream task.
	Route EmitOption
}

// Defaults of JetStreamSourceOptions.
const (
	DefaultSourceBatchSize = 256
	DefaultSourceFetchWait = 5 * time.Second
	DefaultSourceReopenFor = 60 * time.Second
)

const (
	minSourceFetchWait = 100 * time.Millisecond
	// sourceInactiveThreshold: the server deletes a source's consumer after
	// this long without a pull (its worker is gone). A busy task that does
	// not pull for longer finds its consumer gone and recreates it.
	sourceInactiveThreshold = 30 * time.Second
	// sourceRequestTimeout bounds each JetStream API request of a source.
	sourceRequestTimeout = 2 * time.Second
)

var sourceReopenBackoff = retryBackoff{initial: 250 * time.Millisecond, max: 2 * time.Second, multiplier: 2, jitter: 0.2}

// JetStreamInput is the input name a JetStream source records its position
// under: "<stream>/<subject>", or "<stream>/>" without a subject. It is
// the same in every SDK, so positions carry over between languages.
func JetStreamInput(stream, subject string) string {
	if subject == "" {
		subject = ">"
	}
	return stream + "/" + subject
}

// JetStreamSource is a Source reading a JetStream stream. Its position is
// the stream sequence of the last message it handled; after a restore it
// resumes right after it, so every message is handled exactly once per
// consistent cut. SourceMessage.Value is the *nats.Msg. Use one per task.
//
// It reads with an ephemeral pull consumer without acknowledgements (the
// position is the source's own), created at the stream sequence after the
// last message it handled and created again there whenever it fails or is
// found gone, with backoff for up to ReopenFor before the task fails. Pull
// requests make the task's pace the reading pace. (nats.go's ordered push
// consumer stops for good when recreating itself fails with anything but a
// timeout, which a source cannot afford.)
func JetStreamSource(options JetStreamSourceOptions) Source {
	return &jetStreamSource{opts: options, input: JetStreamInput(options.Stream, options.Subject)}
}

type jetStreamSource struct {
	opts  JetStreamSourceOptions
	input string
}

// Handle emits what Map makes of the message (by default, its payload to
// every downstream task).
func (s *jetStreamSource) Handle(msg SourceMessage, ctx Context) error {
	m, ok := msg.Value.(*nats.Msg)
	if !ok {
		return fmt.Errorf("jetstream source %s: message of type %T, not *nats.Msg", s.input, msg.Value)
	}
	if s.opts.Map == nil {
		return ctx.Emit(m.Data)
	}
	emissions, err := s.opts.Map(m, ctx)
	if err != nil {
		return fmt.Errorf("jetstream source %s: map message %d: %w", s.input, msg.Offset, err)
	}
	for _, e := range emissions {
		if e.Route == (EmitOption{}) {
			err = ctx.Emit(e.Value)
		} else {
			err = ctx.Emit(e.Value, e.Route)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Read pulls the stream from after the restored position until ctx ends.
func (s *jetStreamSource) Read(ctx Context, positions []SourcePosition, out chan<- SourceMessage) error {
	if s.opts.Stream == "" {
		return errors.New("jetstream source: option Stream is required")
	}
	r := &streamReader{src: s, ctx: ctx, out: out, nc: s.opts.Conn}
	if r.nc == nil {
		r.nc = ctx.NATS()
	}
	for _, p := range positions {
		if p.Input == s.input {
			r.last = p.Offset
		}
	}
	return r.run()
}

// streamReader is one Read: its consumer, recreated where it stopped.
type streamReader struct {
	src *jetStreamSource
	ctx Context
	out chan<- SourceMessage
	nc  *nats.Conn
	// last is the stream sequence of the last message sent to out (or
	// skipped by the filter here).
	last uint64
}

// run reads from consumer after consumer. One that fails is replaced at
// once, and again with backoff while the new ones fail without delivering
// anything, for up to ReopenFor; then the source fails. The first
// consumer failing to open fails it at once.
func (r *streamReader) run() error {
	var failingSince time.Time
	failures := 0
	reopenFor := r.src.opts.ReopenFor
	if reopenFor <= 0 {
		reopenFor = DefaultSourceReopenFor
	}
	for first := true; ; first = false {
		// On servers whose filter can turn slow, read every subject and filter here.
		filterHere := r.src.opts.Subject != "" && serverFiltersSlowly(r.nc.ConnectedServerVersion())
		sub, err := r.open(filterHere)
		if err != nil && first {
			if r.done() {
				return nil
			}
			return err
		}
		if err == nil {
			before := r.last
			err = r.pull(sub, filterHere)
			// Deleting the consumer is a request: not worth waiting for.
			go func() { _ = sub.Unsubscribe() }()
			if r.last != before {
				failures = 0
			}
		}
		if r.done() {
			return nil
		}
		var delay time.Duration
		if failures == 0 {
			failingSince = time.Now()
		} else {
			delay = sourceReopenBackoff.delay(failures - 1)
		}
		failures++
		if time.Since(failingSince)+delay > reopenFor {
			return fmt.Errorf("jetstream source %s: no consumer read anything for %v: %w", r.src.input, time.Since(failingSince).Round(time.Second), err)
		}
		r.ctx.Logf("jetstream source %s: %v; reading on after stream sequence %d from a new consumer", r.src.input, err, r.last)
		if !sleepCtx(r.ctx.Ctx(), delay) {
			return nil
		}
	}
}

func (r *streamReader) done() bool {
	select {
	case <-r.ctx.Done():
		return true
	default:
		return false
	}
}

// open creates an ephemeral pull consumer starting after r.last.
func (r *streamReader) open(filterHere bool) (*nats.Subscription, error) {
	o := r.src.opts
	if o.CreateStream {
		subject := o.Subject
		if subject == "" {
			subject = o.Stream + ".>"
		}
		ctx, cancel := context.WithTimeout(r.ctx.Ctx(), sourceRequestTimeout)
		err := ensureStream(ctx, r.nc, streamSpec{name: o.Stream, subjects: []string{subject}}, r.ctx.Logf)
		cancel()
		if err != nil {
			return nil, err
		}
	}
	js, err := r.nc.JetStream(nats.MaxWait(sourceRequestTimeout))
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", o.Stream, err)
	}
	opts := []nats.SubOpt{nats.BindStream(o.Stream), nats.AckNone(), nats.InactiveThreshold(sourceInactiveThreshold)}
	if r.last > 0 {
		opts = append(opts, nats.StartSequence(r.last+1))
	} else {
		opts = append(opts, nats.DeliverAll())
	}
	filter := o.Subject
	if filterHere {
		filter = ""
	}
	sub, err := js.PullSubscribe(filter, "", opts...)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", o.Stream, err)
	}
	return sub, nil
}

// pull fetches and sends messages until ctx ends (nil) or the consumer fails (its error).
func (r *streamReader) pull(sub *nats.Subscription, filterHere bool) error {
	batch := r.src.opts.BatchSize
	if batch <= 0 {
		batch = DefaultSourceBatchSize
	}
	wait := r.src.opts.FetchWait
	if wait == 0 {
		wait = DefaultSourceFetchWait
	} else if wait < minSourceFetchWait {
		wait = minSourceFetchWait
	}
	for !r.done() {
		ctx, cancel := context.WithTimeout(r.ctx.Ctx(), wait)
		msgs, err := sub.Fetch(batch, nats.Context(ctx))
		cancel()
		if r.done() {
			return nil
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
			if err := r.checkConsumer(sub); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := r.send(msgs, filterHere); err != nil {
			return err
		}
	}
	return nil
}

// checkConsumer returns an error when the consumer is gone.
func (r *streamReader) checkConsumer(sub *nats.Subscription) error {
	_, err := sub.ConsumerInfo()
	if err == nil {
		return nil
	}
	if errors.Is(err, nats.ErrConsumerNotFound) || errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("consumer not found: %w", err)
	}
	// Unanswered (a server is away): the next pull tells more.
	return nil
}

// send hands the messages to the runtime in order, skipping what was sent before.
func (r *streamReader) send(msgs []*nats.Msg, filterHere bool) error {
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message without JetStream metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		// A consumer recreated where this one stopped may deliver again what was sent.
		if seq <= r.last {
			continue
		}
		r.last = seq
		if filterHere && !subjectMatches(r.src.opts.Subject, m.Subject) {
			continue
		}
		select {
		case r.out <- SourceMessage{Input: r.src.input, Offset: seq, Value: m}:
		case <-r.ctx.Done():
			return nil
		}
	}
	return nil
}
