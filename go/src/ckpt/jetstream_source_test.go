package ckpt

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	nats "github.com/nats-io/nats.go"
)

// jsTestNATS is a nats-server with JetStream on a free port and a
// temporary store, stopped when the test ends.
type jsTestNATS struct {
	t      *testing.T
	bin    string
	dir    string
	port   int
	url    string
	cmd    *exec.Cmd
	exited chan error
}

// jsTestServer starts a nats-server and connects to it; both end with the
// test. It skips the test when nats-server is not installed.
func jsTestServer(t *testing.T) *nats.Conn {
	t.Helper()
	return startJSTestNATS(t).connect()
}

func startJSTestNATS(t *testing.T) *jsTestNATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if _, statErr := os.Stat("/usr/sbin/nats-server"); statErr != nil {
			t.Skip("nats-server is not installed (apt-get install nats-server): skipping the JetStream tests")
		}
		bin = "/usr/sbin/nats-server"
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &jsTestNATS{t: t, bin: bin, dir: t.TempDir(), port: port, url: fmt.Sprintf("nats://127.0.0.1:%d", port)}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *jsTestNATS) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port),
		"-sd", filepath.Join(s.dir, "store"), "-l", filepath.Join(s.dir, "nats.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start nats-server: %v", err)
	}
	exited := make(chan error, 1)
	s.exited = exited
	cmd := s.cmd
	go func() { exited <- cmd.Wait() }()
}

// kill SIGKILLs the server and waits until it is gone.
func (s *jsTestNATS) kill() {
	if s.cmd != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// connect connects (reconnecting quickly, forever) once JetStream answers.
func (s *jsTestNATS) connect() *nats.Conn {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := nats.Connect(s.url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
		if err == nil {
			if err = jsTestJetStreamReady(nc); err == nil {
				s.t.Cleanup(nc.Close)
				return nc
			}
			nc.Close()
		}
		select {
		case e := <-s.exited:
			log, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			s.t.Fatalf("nats-server exited (%v):\n%s", e, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "nats.log"))
			s.t.Fatalf("nats-server does not answer at %s: %v\n%s", s.url, err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsTestJetStreamReady(nc *nats.Conn) error {
	js, err := nc.JetStream()
	if err != nil {
		return err
	}
	_, err = js.AccountInfo()
	return err
}

// jsTestContext is a task Context for driving a source or sink without the
// runtime: it records emissions and failures.
type jsTestContext struct {
	t      *testing.T
	taskID string
	jobID  string
	nc     *nats.Conn
	ctx    context.Context
	cancel context.CancelFunc
	// checkpointID is what CheckpointID returns (as a SnapshotContext).
	checkpointID uint64

	mu      sync.Mutex
	emitted []jsTestEmission
	failed  chan error
}

type jsTestEmission struct {
	value string
	opts  []EmitOption
}

func newJSTestContext(t *testing.T, nc *nats.Conn, jobID, taskID string) *jsTestContext {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &jsTestContext{t: t, taskID: taskID, jobID: jobID, nc: nc, ctx: ctx, cancel: cancel, failed: make(chan error, 16)}
}

func (c *jsTestContext) TaskID() string                  { return c.taskID }
func (c *jsTestContext) JobID() string                   { return c.jobID }
func (c *jsTestContext) Epoch() uint64                   { return 1 }
func (c *jsTestContext) State() KeyedState               { return nil }
func (c *jsTestContext) Outputs() []string               { return []string{"a", "b"} }
func (c *jsTestContext) Done() <-chan struct{}           { return c.ctx.Done() }
func (c *jsTestContext) Ctx() context.Context            { return c.ctx }
func (c *jsTestContext) NATS() *nats.Conn                { return c.nc }
func (c *jsTestContext) CheckpointID() uint64            { return c.checkpointID }
func (c *jsTestContext) Fail(err error)                  { c.failed <- err }
func (c *jsTestContext) Logf(f string, a ...interface{}) { c.t.Logf(c.taskID+": "+f, a...) }

func (c *jsTestContext) Emit(value []byte, opts ...EmitOption) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, o := range opts {
		if o.To != "" && o.To != "a" && o.To != "b" {
			return fmt.Errorf("task %s does not read from task %s", o.To, c.taskID)
		}
	}
	c.emitted = append(c.emitted, jsTestEmission{value: string(value), opts: opts})
	return nil
}

// jsTestRead runs a source's Read and Handle as the runtime would, and
// returns the messages handled, in order, on a channel.
func jsTestRead(t *testing.T, src Source, ctx *jsTestContext, positions []SourcePosition) (<-chan SourceMessage, <-chan error) {
	out := make(chan SourceMessage)
	handled := make(chan SourceMessage, 1024)
	readErr := make(chan error, 1)
	go func() { readErr <- src.Read(ctx, positions, out) }()
	go func() {
		for {
			select {
			case m := <-out:
				if err := src.Handle(m, ctx); err != nil {
					ctx.Fail(err)
				}
				handled <- m
			case <-ctx.Done():
				return
			}
		}
	}()
	return handled, readErr
}

// jsTestNext waits for n handled messages.
func jsTestNext(t *testing.T, handled <-chan SourceMessage, n int) []SourceMessage {
	t.Helper()
	var got []SourceMessage
	timeout := time.After(15 * time.Second)
	for len(got) < n {
		select {
		case m := <-handled:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("%d of %d messages handled within 15 s", len(got), n)
		}
	}
	return got
}

// jsTestNothingMore fails when another message is handled within d.
func jsTestNothingMore(t *testing.T, handled <-chan SourceMessage, d time.Duration) {
	t.Helper()
	select {
	case m := <-handled:
		t.Fatalf("unexpected message %d (%s)", m.Offset, m.Value.(*nats.Msg).Data)
	case <-time.After(d):
	}
}

func jsTestStream(t *testing.T, nc *nats.Conn, name string, subjects ...string) nats.JetStreamContext {
	t.Helper()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AddStream(&nats.StreamConfig{Name: name, Subjects: subjects}); err != nil {
		t.Fatal(err)
	}
	return js
}

func jsTestPublish(t *testing.T, js nats.JetStreamContext, subject string, values ...string) {
	t.Helper()
	for _, v := range values {
		if _, err := js.Publish(subject, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestJetStreamInputIsTheTypeScriptFormat(t *testing.T) {
	if got := JetStreamInput("SENTENCES", "sentences.0"); got != "SENTENCES/sentences.0" {
		t.Errorf("got %q", got)
	}
	if got := JetStreamInput("S", ""); got != "S/>" {
		t.Errorf("got %q", got)
	}
}

func TestSubjectMatches(t *testing.T) {
	cases := []struct {
		filter, subject string
		want            bool
	}{
		{"a.b", "a.b", true}, {"a.b", "a.c", false}, {"a.*", "a.b", true}, {"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true}, {"a.>", "a", false}, {"*.b", "a.b", true}, {">", "x", true},
	}
	for _, c := range cases {
		if got := subjectMatches(c.filter, c.subject); got != c.want {
			t.Errorf("subjectMatches(%q, %q) = %v", c.filter, c.subject, got)
		}
	}
	if !serverFiltersSlowly("2.9.10") || serverFiltersSlowly("2.10.1") || serverFiltersSlowly("") {
		t.Error("serverFiltersSlowly is wrong")
	}
}

func TestJetStreamSourceReadsItsSubjectWithStreamSequencesAsOffsets(t *testing.T) {
	nc := jsTestServer(t)
	js := jsTestStream(t, nc, "IN", "in.*")
	for i := 0; i < 5; i++ {
		jsTestPublish(t, js, "in.0", fmt.Sprintf("zero %d", i))
		jsTestPublish(t, js, "in.1", fmt.Sprintf("one %d", i))
	}
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.0", FetchWait: 200 * time.Millisecond})
	handled, _ := jsTestRead(t, src, ctx, nil)
	got := jsTestNext(t, handled, 5)
	for i, m := range got {
		if m.Input != "IN/in.0" || m.Offset != uint64(2*i+1) {
			t.Errorf("message %d: input %q offset %d", i, m.Input, m.Offset)
		}
	}
	jsTestPublish(t, js, "in.1", "one 5")
	jsTestPublish(t, js, "in.0", "zero 5")
	if m := jsTestNext(t, handled, 1)[0]; m.Offset != 12 {
		t.Errorf("a message published later: offset %d, want 12", m.Offset)
	}
	jsTestNothingMore(t, handled, 300*time.Millisecond)
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	if len(ctx.emitted) != 6 || ctx.emitted[0].value != "zero 0" || len(ctx.emitted[0].opts) != 0 {
		t.Errorf("emitted %+v; want each payload to every downstream task", ctx.emitted)
	}
}

func TestJetStreamSourceResumesAfterItsPositionAndEndsWithItsContext(t *testing.T) {
	nc := jsTestServer(t)
	js := jsTestStream(t, nc, "IN", "in.*")
	for i := 0; i < 10; i++ {
		jsTestPublish(t, js, fmt.Sprintf("in.%d", i%2), strconv.Itoa(i+1))
	}
	ctx := newJSTestContext(t, nc, "job", "split-1")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.1", FetchWait: 200 * time.Millisecond})
	// The restored position: message 6 (on in.1) was the last handled.
	positions := []SourcePosition{{Input: "OTHER/x", Offset: 9}, {Input: "IN/in.1", Offset: 6}}
	handled, readErr := jsTestRead(t, src, ctx, positions)
	got := jsTestNext(t, handled, 2)
	if got[0].Offset != 8 || got[1].Offset != 10 {
		t.Errorf("resumed at offsets %d, %d; want 8, 10", got[0].Offset, got[1].Offset)
	}
	jsTestNothingMore(t, handled, 300*time.Millisecond)
	ctx.cancel()
	select {
	case err := <-readErr:
		if err != nil {
			t.Errorf("Read ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not end with its context")
	}
}

func TestJetStreamSourceRecreatesALostConsumerWhereItStopped(t *testing.T) {
	nc := jsTestServer(t)
	js := jsTestStream(t, nc, "IN", "in.*")
	jsTestPublish(t, js, "in.0", "1", "2", "3")
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.0", FetchWait: 200 * time.Millisecond})
	handled, _ := jsTestRead(t, src, ctx, nil)
	jsTestNext(t, handled, 3)
	for name := range js.ConsumerNames("IN") {
		if err := js.DeleteConsumer("IN", name); err != nil {
			t.Fatal(err)
		}
	}
	jsTestPublish(t, js, "in.0", "4", "5")
	got := jsTestNext(t, handled, 2)
	if got[0].Offset != 4 || got[1].Offset != 5 {
		t.Errorf("after the consumer was lost: offsets %d, %d; want 4, 5", got[0].Offset, got[1].Offset)
	}
	jsTestNothingMore(t, handled, 500*time.Millisecond)
}

func TestJetStreamSourceCreatesItsStreamAndMapsMessages(t *testing.T) {
	nc := jsTestServer(t)
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{
		Stream:       "WORDS",
		Subject:      "words.in",
		CreateStream: true,
		FetchWait:    200 * time.Millisecond,
		Map: func(m *nats.Msg, _ Context) ([]Emission, error) {
			if string(m.Data) == "bad" {
				return nil, errors.New("cannot map bad")
			}
			return []Emission{{Value: m.Data, Route: ByKey(string(m.Data))}, {Value: []byte("copy"), Route: ToTask("b")}}, nil
		},
	})
	handled, _ := jsTestRead(t, src, ctx, nil)
	js, _ := nc.JetStream()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := js.StreamInfo("WORDS"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not create its stream")
		}
		time.Sleep(20 * time.Millisecond)
	}
	jsTestPublish(t, js, "words.in", "w", "bad")
	jsTestNext(t, handled, 2)
	select {
	case err := <-ctx.failed:
		if err == nil || err.Error() != "jetstream source WORDS/words.in: map message 2: cannot map bad" {
			t.Errorf("failure %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a map error did not fail the task")
	}
	ctx.mu.Lock()
	defer ctx.mu.Unlock()
	want := []jsTestEmission{{"w", []EmitOption{ByKey("w")}}, {"copy", []EmitOption{ToTask("b")}}}
	if fmt.Sprint(ctx.emitted) != fmt.Sprint(want) {
		t.Errorf("emitted %+v, want %+v", ctx.emitted, want)
	}
}

func TestJetStreamSourceReadsOnAcrossANATSServerRestart(t *testing.T) {
	server := startJSTestNATS(t)
	nc := server.connect()
	js := jsTestStream(t, nc, "IN", "in.*")
	jsTestPublish(t, js, "in.0", "1", "2", "3")
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.0", FetchWait: 200 * time.Millisecond})
	handled, _ := jsTestRead(t, src, ctx, nil)
	jsTestNext(t, handled, 3)
	server.kill()
	server.start()
	deadline := time.Now().Add(15 * time.Second)
	for _, v := range []string{"4", "5"} {
		for {
			_, err := js.Publish("in.0", []byte(v))
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish after the restart: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	got := jsTestNext(t, handled, 2)
	if got[0].Offset != 4 || got[1].Offset != 5 {
		t.Errorf("after the restart: offsets %d, %d; want 4, 5", got[0].Offset, got[1].Offset)
	}
	jsTestNothingMore(t, handled, 500*time.Millisecond)
}

func TestJetStreamSourceFailsWhenNoConsumerWorksForReopenFor(t *testing.T) {
	nc := jsTestServer(t)
	js := jsTestStream(t, nc, "IN", "in.*")
	jsTestPublish(t, js, "in.0", "1")
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.0", FetchWait: 200 * time.Millisecond, ReopenFor: time.Second})
	handled, readErr := jsTestRead(t, src, ctx, nil)
	jsTestNext(t, handled, 1)
	if err := js.DeleteStream("IN"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-readErr:
		if err == nil || !strings.Contains(err.Error(), "jetstream source IN/in.0: no consumer read anything for") {
			t.Errorf("Read ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read goes on without its stream")
	}
}

// On nats-server before 2.10 a subject-filtered consumer can make the
// server rescan a block for every message it delivers (serverFiltersSlowly):
// a source reads every subject there and filters itself, also when it
// starts at the beginning of the stream, not only when it resumes.
func TestJetStreamSourceFiltersItselfOnServersBefore210(t *testing.T) {
	nc := jsTestServer(t)
	js := jsTestStream(t, nc, "IN", "in.*")
	for i := 0; i < 4; i++ {
		jsTestPublish(t, js, fmt.Sprintf("in.%d", i%2), strconv.Itoa(i+1))
	}
	ctx := newJSTestContext(t, nc, "job", "split-0")
	src := JetStreamSource(JetStreamSourceOptions{Stream: "IN", Subject: "in.1", FetchWait: 200 * time.Millisecond})
	handled, _ := jsTestRead(t, src, ctx, nil)
	got := jsTestNext(t, handled, 2)
	if got[0].Offset != 2 || got[1].Offset != 4 {
		t.Errorf("offsets %d, %d; want 2, 4 (in.1 only)", got[0].Offset, got[1].Offset)
	}
	wantFilter := "in.1"
	if serverFiltersSlowly(nc.ConnectedServerVersion()) {
		wantFilter = ""
	}
	n := 0
	for info := range js.ConsumersInfo("IN") {
		n++
		if info.Config.FilterSubject != wantFilter {
			t.Errorf("server %s: the source's consumer filters %q, want %q", nc.ConnectedServerVersion(), info.Config.FilterSubject, wantFilter)
		}
	}
	if n != 1 {
		t.Errorf("%d consumers on the stream, want the source's one", n)
	}
	jsTestNothingMore(t, handled, 300*time.Millisecond)
}
