package ckpt

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"time"

	nats "github.com/nats-io/nats.go"
)

// streamSpec is a JetStream stream a source or sink makes sure of.
type streamSpec struct {
	name     string
	subjects []string
	// duplicateWindow of a created stream; an existing one with a shorter
	// window is logged (re-published records could then be duplicated).
	duplicateWindow time.Duration
}

// ensureStream creates the stream unless it exists. Two tasks creating the
// same stream at once both succeed: the server accepts an identical
// configuration again.
func ensureStream(ctx context.Context, nc *nats.Conn, spec streamSpec, logf func(string, ...interface{})) error {
	js, err := nc.JetStream(nats.Context(ctx))
	if err != nil {
		return fmt.Errorf("ensure stream %s: %w", spec.name, err)
	}
	info, err := js.StreamInfo(spec.name)
	if err == nil {
		if spec.duplicateWindow > 0 && info.Config.Duplicates < spec.duplicateWindow {
			logf("stream %s has a duplicate window of %v, shorter than the %v wanted: re-published records may be duplicated",
				spec.name, info.Config.Duplicates, spec.duplicateWindow)
		}
		return nil
	}
	if !errors.Is(err, nats.ErrStreamNotFound) {
		return fmt.Errorf("ensure stream %s: %w", spec.name, err)
	}
	_, err = js.AddStream(&nats.StreamConfig{
		Name:       spec.name,
		Subjects:   spec.subjects,
		Duplicates: spec.duplicateWindow,
		Storage:    nats.FileStorage,
		Retention:  nats.LimitsPolicy,
		Discard:    nats.DiscardOld,
		Replicas:   1,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", spec.name, err)
	}
	logf("stream %s created (subjects %s)", spec.name, strings.Join(spec.subjects, ", "))
	return nil
}

// retryBackoff is an exponential backoff with jitter, as the TypeScript
// SDK's source and sink use (worker.go's backoff is the session's).
type retryBackoff struct {
	initial, max time.Duration
	multiplier   float64
	jitter       float64
}

// delay is the wait before retry number attempt (0-based).
func (b retryBackoff) delay(attempt int) time.Duration {
	d := float64(b.initial)
	for i := 0; i < attempt && d < float64(b.max); i++ {
		d *= b.multiplier
	}
	if d > float64(b.max) {
		d = float64(b.max)
	}
	d *= 1 + b.jitter*(2*rand.Float64()-1)
	return time.Duration(d)
}

// subjectMatches tells whether subject matches filter (NATS wildcards: `*`
// is one token, a final `>` one or more).
func subjectMatches(filter, subject string) bool {
	if !strings.ContainsAny(filter, "*>") {
		return filter == subject
	}
	f := strings.Split(filter, ".")
	s := strings.Split(subject, ".")
	for i, token := range f {
		if token == ">" {
			return len(s) > i
		}
		if i >= len(s) || (token != "*" && token != s[i]) {
			return false
		}
	}
	return len(f) == len(s)
}

// serverFiltersSlowly is true for nats-server versions before 2.10, whose
// file store counts a subject-filtered consumer's pending messages wrongly:
// when the consumer's position is in the first half of a message block,
// the count comes back without its last sequence, so the consumer counts
// again, by a scan of the block, for every message it delivers from then
// on, until it passes the middle of the block (measured on 2.9.10: a
// filtered consumer delivers about twenty times slower). Any count sets it
// off: a consumer created inside the stream (a source resuming, or a
// consumer recreated where it stopped), a consumer info (a source asks
// for one after a pull that found nothing; monitoring asks too). A source
// reads every subject there and filters itself, as the TypeScript SDK does.
func serverFiltersSlowly(serverVersion string) bool {
	parts := strings.SplitN(strings.TrimPrefix(serverVersion, "v"), ".", 3)
	if len(parts) < 3 {
		return false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return major < 2 || (major == 2 && minor < 10)
}
