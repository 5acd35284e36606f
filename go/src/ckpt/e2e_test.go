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
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ckpt/ckptpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The end-to-end test runs Go workers against a real coordinator (started
// from this repository with node), etcd and nats-server. It is skipped,
// saying why, when one of them is not installed.

// handedOut holds the ports freePort returned: the kernel may give a port
// that was just released again, and two servers of one test then collide.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

func freePort(t *testing.T) int {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for attempt := 0; attempt < 100; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut[port] {
			handedOut[port] = true
			return port
		}
	}
	t.Fatal("no unused loopback port after 100 attempts")
	return 0
}

func lookFor(names ...string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n
			}
		}
	}
	return ""
}

// startProcess runs a command until the test ends; its output goes to a log file shown on failure.
func startProcess(t *testing.T, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		log.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			if len(out) > 4000 {
				out = out[len(out)-4000:]
			}
			t.Logf("--- %s ---\n%s", filepath.Base(name), out)
		}
	})
	return cmd
}

type cluster struct {
	coordinator  string // the first coordinator
	coordinators []string
	processes    []*exec.Cmd
	natsURL      string
	client       ckptpb.CoordinatorClient // of the first coordinator
	clients      []ckptpb.CoordinatorClient
}

func startCluster(t *testing.T) *cluster { return startClusterOf(t, 1) }

// startClusterOf starts etcd, nats-server and n coordinators, with extra flags.
func startClusterOf(t *testing.T, n int, extra ...string) *cluster {
	etcd := lookFor("etcd")
	natsServer := lookFor("nats-server", "/usr/sbin/nats-server")
	node := lookFor("node")
	repo, _ := filepath.Abs("../../..")
	_, tsxErr := os.Stat(filepath.Join(repo, "node_modules", "tsx"))
	switch {
	case etcd == "":
		t.Skip("end-to-end test skipped: etcd is not installed (make system-deps)")
	case natsServer == "":
		t.Skip("end-to-end test skipped: nats-server is not installed (make system-deps)")
	case node == "" || tsxErr != nil:
		t.Skipf("end-to-end test skipped: node or %s/node_modules (npm ci) is missing", repo)
	}
	etcdPort, peerPort, natsPort := freePort(t), freePort(t), freePort(t)
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	startProcess(t, repo, etcd, "--name", "e2e", "--data-dir", t.TempDir(), "--listen-client-urls", etcdURL,
		"--advertise-client-urls", etcdURL, "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e="+peerURL, "--initial-cluster-state", "new")
	startProcess(t, repo, natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(natsPort), "-js", "-sd", t.TempDir())
	c := &cluster{natsURL: fmt.Sprintf("nats://127.0.0.1:%d", natsPort)}
	for i := 0; i < n; i++ {
		address := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		args := []string{"--import", "tsx", "src/cli/main.ts", "coordinator", "--etcd", etcdURL, "--nats", c.natsURL,
			"--listen", address, "--http-listen", fmt.Sprintf("127.0.0.1:%d", freePort(t)), "--etcd-prefix", "/e2e/",
			"--subject-prefix", "e2e", "--heartbeat-interval-ms", "250", "--heartbeat-timeout-ms", "4000",
			"--shutdown-grace-ms", "1000", "--log-level", "info"}
		if n > 1 {
			args = append(args, "--lease-ttl-ms", "2000")
		}
		args = append(args, extra...)
		c.processes = append(c.processes, startProcess(t, repo, node, args...))
		conn, err := grpc.Dial(address, grpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c.coordinators = append(c.coordinators, address)
		c.clients = append(c.clients, ckptpb.NewCoordinatorClient(conn))
	}
	c.coordinator, c.client = c.coordinators[0], c.clients[0]
	for _, address := range c.coordinators {
		c.waitUp(t, address)
	}
	return c
}

// startupDeadline bounds a coordinator's start: a first run compiles the
// TypeScript, and on a loaded machine that alone has taken half a minute.
const startupDeadline = 3 * time.Minute

// waitUp waits until the coordinator listens for gRPC (it does once it has
// started), so that the deadlines of a test's steps count from a running
// coordinator.
func (c *cluster) waitUp(t *testing.T, address string) {
	t.Helper()
	deadline := time.Now().Add(startupDeadline)
	for {
		conn, err := net.DialTimeout("tcp", address, 2*time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("coordinator %s did not listen within %v: %v", address, startupDeadline, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// leader is the index of the coordinator that answers GetJob, -1 when none
// does within 15 s (a loaded machine may keep a call waiting for seconds).
func (c *cluster) leader(jobID string) int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		for i, client := range c.clients {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err := client.GetJob(ctx, &ckptpb.GetJobRequest{JobId: jobID})
			cancel()
			if err == nil {
				return i
			}
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// submit submits a job to whichever coordinator leads, waiting for one to come up.
func (c *cluster) submit(t *testing.T, spec *ckptpb.JobSpec) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		for _, client := range c.clients {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = client.SubmitJob(ctx, &ckptpb.SubmitJobRequest{Spec: spec})
			cancel()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// e2eSource counts 1..limit, keyed by n mod 8.
type e2eSource struct{ limit uint64 }

func (s e2eSource) Read(ctx Context, positions []SourcePosition, out chan<- SourceMessage) error {
	var n uint64
	for _, p := range positions {
		n = p.Offset
	}
	for n < s.limit {
		n++
		select {
		case out <- SourceMessage{Input: "counter", Offset: n, Value: n}:
		case <-ctx.Done():
			return nil
		}
		if n%50 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	<-ctx.Done()
	return nil
}

func (s e2eSource) Handle(msg SourceMessage, ctx Context) error {
	n := msg.Value.(uint64)
	return ctx.Emit([]byte(strconv.FormatUint(n, 10)), ByKey(strconv.FormatUint(n%8, 10)))
}

func addDecimal(st KeyedState, key string, n uint64) {
	old, _ := st.Get(key)
	cur, _ := strconv.ParseUint(string(old), 10, 64)
	st.Set(key, []byte(strconv.FormatUint(cur+n, 10)))
}

func decimal(st KeyedState, key string) uint64 {
	b, _ := st.Get(key)
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// e2eSum keeps a sum per key and passes records on by key.
type e2eSum struct{}

func (e2eSum) Process(rec Record, ctx Context) error {
	n, err := strconv.ParseUint(string(rec.Value), 10, 64)
	if err != nil {
		return err
	}
	if !rec.HasKey || PartitionIndex(rec.Key, 2) != map[string]int{"sum-0": 0, "sum-1": 1}[ctx.TaskID()] {
		return fmt.Errorf("record of key %q reached %s", rec.Key, ctx.TaskID())
	}
	addDecimal(ctx.State(), rec.Key, n)
	return ctx.Emit(rec.Value, ByKey(rec.Key))
}

// e2eSink counts what it receives, and tells what its committed snapshots and restores held.
type e2eSink struct {
	mu        sync.Mutex
	snapshots map[uint64][2]uint64
	committed chan [2]uint64
	restored  chan [3]uint64
}

func (s *e2eSink) Process(rec Record, ctx Context) error {
	n, _ := strconv.ParseUint(string(rec.Value), 10, 64)
	addDecimal(ctx.State(), "count", 1)
	addDecimal(ctx.State(), "sum", n)
	return nil
}

func (s *e2eSink) Decline(ctx SnapshotContext) string {
	s.mu.Lock()
	s.snapshots[ctx.CheckpointID()] = [2]uint64{decimal(ctx.State(), "count"), decimal(ctx.State(), "sum")}
	s.mu.Unlock()
	return ""
}

func (s *e2eSink) OnCheckpointComplete(id uint64, ctx Context) error {
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

func (s *e2eSink) OnRestored(id uint64, _ []SourcePosition, ctx Context) error {
	s.restored <- [3]uint64{id, decimal(ctx.State(), "count"), decimal(ctx.State(), "sum")}
	return nil
}

func TestEndToEnd(t *testing.T) {
	c := startCluster(t)
	for _, mode := range []ckptpb.CheckpointMode{ckptpb.CheckpointMode_CHECKPOINT_MODE_ALIGNED, ckptpb.CheckpointMode_CHECKPOINT_MODE_UNALIGNED} {
		t.Run(mode.String(), func(t *testing.T) { runEndToEnd(t, c, mode) })
	}
}

func runEndToEnd(t *testing.T, c *cluster, mode ckptpb.CheckpointMode) {
	const limit = 3000
	jobID := fmt.Sprintf("go-e2e-%d", mode)
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{
			{TaskId: "src"}, {TaskId: "sum-0", Inputs: []string{"src"}}, {TaskId: "sum-1", Inputs: []string{"src"}},
			{TaskId: "sink", Inputs: []string{"sum-0", "sum-1"}},
		},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, TimeoutMs: 10000, Mode: mode,
			Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	// Aligned keeps its snapshots in a directory, unaligned in the JetStream Object Store.
	state := "file://" + t.TempDir()
	if mode == ckptpb.CheckpointMode_CHECKPOINT_MODE_UNALIGNED {
		state = "nats-obj://go-e2e"
	}
	newWorker := func(sink *e2eSink, tasks ...string) *Worker {
		w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: jobID, StateURI: state,
			Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range tasks {
			var task interface{}
			switch id {
			case "src":
				task = e2eSource{limit: limit}
			case "sink":
				task = sink
			default:
				task = e2eSum{}
			}
			if err := w.AddTask(id, task); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	run := func(w *Worker) (context.CancelFunc, chan error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		return cancel, done
	}
	newSink := func() *e2eSink {
		return &e2eSink{snapshots: map[uint64][2]uint64{}, committed: make(chan [2]uint64, 1000), restored: make(chan [3]uint64, 10)}
	}
	wantCount, wantSum := uint64(limit), uint64(limit*(limit+1)/2)
	waitTotals := func(sink *e2eSink) {
		t.Helper()
		deadline := time.After(40 * time.Second)
		for {
			select {
			case v := <-sink.committed:
				if v[0] > wantCount || v[1] > wantSum {
					t.Fatalf("a committed snapshot holds count %d sum %d, more than the source sent", v[0], v[1])
				}
				if v[0] == wantCount {
					if v[1] != wantSum {
						t.Fatalf("the sink committed count %d with sum %d, want %d", v[0], v[1], wantSum)
					}
					return
				}
			case <-deadline:
				t.Fatalf("no committed snapshot of the sink holds all %d records", wantCount)
			}
		}
	}

	a := newWorker(newSink(), "src", "sum-0")
	sink := newSink()
	b := newWorker(sink, "sum-1", "sink")
	stopA, doneA := run(a)
	defer stopA()
	stopB, doneB := run(b)
	waitTotals(sink)

	// The sink's worker goes; a new one restores the sink from the last
	// committed checkpoint, and the job still ends with every record once.
	stopB()
	if err := <-doneB; err != nil {
		t.Fatalf("Run after its context ended: %v", err)
	}
	sink2 := newSink()
	b2 := newWorker(sink2, "sum-1", "sink")
	stopB2, doneB2 := run(b2)
	defer stopB2()
	select {
	case r := <-sink2.restored:
		if r[0] == 0 || r[1] != wantCount || r[2] != wantSum {
			t.Fatalf("the sink restored checkpoint %d with count %d sum %d, want a checkpoint with %d, %d", r[0], r[1], r[2], wantCount, wantSum)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the new worker did not restore")
	}
	waitTotals(sink2)

	// A savepoint: the source passes its type on with its barriers, and every task stores its whole state.
	sp, err := c.client.TriggerSavepoint(context.Background(), &ckptpb.TriggerSavepointRequest{JobId: jobID})
	if err != nil {
		t.Fatalf("savepoint: %v", err)
	}
	if sp.Savepoint == nil || sp.Checkpoint.GetState() != ckptpb.CheckpointState_CHECKPOINT_STATE_COMPLETED {
		t.Fatalf("savepoint not taken: %v", sp.Checkpoint)
	}

	if _, err := c.client.CancelJob(context.Background(), &ckptpb.CancelJobRequest{JobId: jobID}); err != nil {
		t.Fatal(err)
	}
	for _, done := range []chan error{doneA, doneB2} {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after the job was canceled: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("Run did not return after the job was canceled")
		}
	}
}

// faultySink declines one checkpoint, and blocks forever at one record of its first epoch.
type faultySink struct {
	declineAt uint64
	hangAt    int
	mu        sync.Mutex
	seen      int
	first     uint64
	declined  bool
	aborted   chan uint64
	completed chan uint64
	restored  chan uint64
}

func (s *faultySink) Process(rec Record, ctx Context) error {
	s.mu.Lock()
	if s.first == 0 {
		s.first = ctx.Epoch()
	}
	hang := false
	if ctx.Epoch() == s.first {
		s.seen++
		hang = s.seen == s.hangAt
	}
	s.mu.Unlock()
	if hang {
		<-make(chan struct{}) // forever: the coordinator finds the task hung
	}
	addDecimal(ctx.State(), "count", 1)
	return nil
}

func (s *faultySink) Decline(ctx SnapshotContext) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ctx.CheckpointID() == s.declineAt && !s.declined {
		s.declined = true
		return "declined by the test"
	}
	return ""
}

func (s *faultySink) OnCheckpointAbort(id uint64, ctx Context) error {
	select {
	case s.aborted <- id:
	default:
	}
	return nil
}

func (s *faultySink) OnCheckpointComplete(id uint64, ctx Context) error {
	select {
	case s.completed <- id:
	default:
	}
	return nil
}

func (s *faultySink) OnRestored(id uint64, _ []SourcePosition, ctx Context) error {
	s.restored <- ctx.Epoch()
	return nil
}

func TestEndToEndDeclineAndHungTask(t *testing.T) {
	c := startCluster(t)
	jobID := "go-e2e-faults"
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "sink", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, TimeoutMs: 10000, TaskStallTimeoutMs: 1500,
			TolerableFailures: -1, Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	sink := &faultySink{declineAt: 2, hangAt: 15000, aborted: make(chan uint64, 100), completed: make(chan uint64, 1000), restored: make(chan uint64, 10)}
	w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: jobID,
		StateURI: "file://" + t.TempDir(), AbandonCallAfter: 500 * time.Millisecond,
		Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask("src", e2eSource{limit: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask("sink", sink); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	wait := func(what string, ch chan uint64, ok func(uint64) bool) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case v := <-ch:
				if ok(v) {
					return
				}
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	wait("the first restore", sink.restored, func(e uint64) bool { return e == 1 })
	wait("the abort of the declined checkpoint 2", sink.aborted, func(id uint64) bool { return id == 2 })
	wait("a completion after the decline", sink.completed, func(id uint64) bool { return id > 2 })
	wait("the restore after the hung task was failed", sink.restored, func(e uint64) bool { return e > 1 })
	drained := false
	for !drained {
		select {
		case <-sink.completed:
		default:
			drained = true
		}
	}
	wait("a completion after the restore", sink.completed, func(uint64) bool { return true })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after its context ended: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestEndToEndLeaderFailover(t *testing.T) {
	c := startClusterOf(t, 2)
	jobID := "go-e2e-failover"
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "sink", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, TimeoutMs: 10000,
			Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	sink := &faultySink{aborted: make(chan uint64, 1000), completed: make(chan uint64, 1000), restored: make(chan uint64, 10)}
	// The standby is named first: the worker must follow it to the leader.
	leader := c.leader(jobID)
	if leader < 0 {
		t.Fatal("no coordinator leads")
	}
	addrs := []string{c.coordinators[1-leader], c.coordinators[leader]}
	w, err := NewWorker(Options{Coordinators: addrs, NATSURL: c.natsURL, JobID: jobID, StateURI: "file://" + t.TempDir(),
		Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.AddTask("src", e2eSource{limit: 1 << 40})
	_ = w.AddTask("sink", sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	completion := func(what string) uint64 {
		t.Helper()
		select {
		case id := <-sink.completed:
			return id
		case <-time.After(30 * time.Second):
			t.Fatalf("no completion %s", what)
		}
		return 0
	}
	completion("before the fail-over")
	_ = syscall.Kill(-c.processes[leader].Process.Pid, syscall.SIGKILL)
	killedAt := time.Now()
	for len(sink.completed) > 0 {
		<-sink.completed
	}
	// Completions the old leader sent before it died may still arrive; one well after comes from the new one.
	for {
		completion("after the fail-over")
		if time.Since(killedAt) > 4*time.Second {
			break
		}
	}
	if got := c.leader(jobID); got != 1-leader {
		t.Fatalf("coordinator %d leads after the fail-over, want %d", got, 1-leader)
	}
	if _, err := c.clients[1-leader].CancelJob(context.Background(), &ckptpb.CancelJobRequest{JobId: jobID}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the job was canceled: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the job was canceled")
	}
}

func TestEndToEndBearerToken(t *testing.T) {
	c := startClusterOf(t, 1, "--auth-token", "s3cret")
	conn, err := grpc.Dial(c.coordinator, grpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c.clients[0] = ckptpb.NewCoordinatorClient(conn)
	jobID := "go-e2e-token"
	spec := &ckptpb.JobSpec{JobId: jobID, Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "sink", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer s3cret")
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := c.client.SubmitJob(ctx, &ckptpb.SubmitJobRequest{Spec: spec})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("submit: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	newWorker := func(token string) (*Worker, *faultySink) {
		sink := &faultySink{aborted: make(chan uint64, 100), completed: make(chan uint64, 100), restored: make(chan uint64, 10)}
		w, err := NewWorker(Options{Coordinators: []string{c.coordinator}, NATSURL: c.natsURL, JobID: jobID, Token: token,
			StateURI: "file://" + t.TempDir(), Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
		if err != nil {
			t.Fatal(err)
		}
		_ = w.AddTask("src", e2eSource{limit: 1 << 40})
		_ = w.AddTask("sink", sink)
		return w, sink
	}
	bad, _ := newWorker("wrong")
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "UNAUTHENTICATED") {
		t.Fatalf("a worker with a wrong token: %v, want UNAUTHENTICATED", err)
	}
	good, sink := newWorker("s3cret")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- good.Run(ctx) }()
	select {
	case <-sink.completed:
	case <-time.After(30 * time.Second):
		t.Fatal("no checkpoint completed with the token")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// failingSource idles until fail is closed, then its first Read fails; later reads idle.
type failingSource struct {
	fail   chan struct{}
	failed int32
}

func (s *failingSource) Read(ctx Context, _ []SourcePosition, _ chan<- SourceMessage) error {
	select {
	case <-s.fail:
		if atomic.CompareAndSwapInt32(&s.failed, 0, 1) {
			return errors.New("the source fails on purpose")
		}
	case <-ctx.Done():
		return nil
	}
	<-ctx.Done()
	return nil
}

func (s *failingSource) Handle(msg SourceMessage, ctx Context) error { return nil }

// A failure written into a paused leader's stream is lost; the worker's
// session resumes in the same epoch under the next leader, which knows
// nothing of it. The worker reports the failure again, so the job recovers;
// otherwise the failed task declines every trigger for good.
func TestEndToEndFailureLostWithAPausedLeaderIsReportedAgain(t *testing.T) {
	c := startClusterOf(t, 2)
	jobID := "go-e2e-lost-failure"
	c.submit(t, &ckptpb.JobSpec{
		JobId: jobID,
		Tasks: []*ckptpb.TaskSpec{{TaskId: "src"}, {TaskId: "sink", Inputs: []string{"src"}}},
		Policy: &ckptpb.CheckpointPolicy{IntervalMs: 150, TimeoutMs: 10000,
			Compression: ckptpb.StateCompression_STATE_COMPRESSION_NONE},
	})
	sink := &faultySink{aborted: make(chan uint64, 1000), completed: make(chan uint64, 1000), restored: make(chan uint64, 10)}
	leader := c.leader(jobID)
	if leader < 0 {
		t.Fatal("no coordinator leads")
	}
	src := &failingSource{fail: make(chan struct{})}
	w, err := NewWorker(Options{Coordinators: c.coordinators, NATSURL: c.natsURL, JobID: jobID, StateURI: "file://" + t.TempDir(),
		Logf: func(f string, a ...interface{}) { t.Logf("worker: "+f, a...) }})
	if err != nil {
		t.Fatal(err)
	}
	_ = w.AddTask("src", src)
	_ = w.AddTask("sink", sink)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	select {
	case <-sink.completed:
	case <-time.After(30 * time.Second):
		t.Fatal("no completion before the pause")
	}
	for len(sink.restored) > 0 {
		<-sink.restored
	}
	pid := c.processes[leader].Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGSTOP)
	defer func() { _ = syscall.Kill(-pid, syscall.SIGCONT) }()
	close(src.fail)
	select {
	case <-sink.restored:
	case <-time.After(40 * time.Second):
		t.Fatal("the job did not recover: the new leader never learnt of the failure")
	}
	for len(sink.completed) > 0 {
		<-sink.completed
	}
	select {
	case <-sink.completed:
	case <-time.After(30 * time.Second):
		t.Fatal("no completion after the recovery")
	}
}
