package ckpt

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestFollowTheLeader(t *testing.T) {
	w, err := NewWorker(Options{Coordinators: []string{"a:1,b:2", "c:3"}, NATSURL: "nats://x:4222", JobID: "j", StateURI: "file:///tmp/x",
		Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	refused := func(reason, leader string) errorInfo {
		md := metadata.Pairs("ckpt-reason", reason)
		if leader != "" {
			md.Append("ckpt-leader", leader)
		}
		return errorInfoOf(&trailerError{err: status.Error(codes.Unavailable, reason+": refused"), trailer: md}, nil)
	}
	if info := refused("NOT_LEADER", "c:3"); !w.follow(info) || w.address() != "c:3" {
		t.Errorf("NOT_LEADER naming c:3: at %s", w.address())
	}
	if w.follow(refused("TAKING_OVER", "")); w.address() != "c:3" {
		t.Errorf("TAKING_OVER: moved to %s, want to stay", w.address())
	}
	if w.follow(refused("SHUTTING_DOWN", "")); w.address() != "a:1" {
		t.Errorf("SHUTTING_DOWN: at %s, want the next address", w.address())
	}
	if w.follow(refused("NOT_LEADER", "evil:666")); w.address() != "b:2" {
		t.Errorf("a leader not listed: at %s, want the next address", w.address())
	}
	if w.follow(errorInfoOf(status.Error(codes.Unavailable, "connection refused"), nil)); w.address() != "c:3" {
		t.Errorf("a transport failure: at %s, want the next address", w.address())
	}
	// The reason is also read from the status message when the trailer has none.
	if info := errorInfoOf(status.Error(codes.FailedPrecondition, "JOB_CANCELED: job j is canceled"), nil); info.reason != "JOB_CANCELED" || !fatalReason(info.reason) {
		t.Errorf("reason %q", info.reason)
	}
	if info := errorInfoOf(status.Error(codes.Unauthenticated, "no token"), nil); info.reason != "UNAUTHENTICATED" {
		t.Errorf("reason %q", info.reason)
	}
}

func TestOptionsAreChecked(t *testing.T) {
	good := Options{Coordinators: []string{"a:1"}, NATSURL: "nats://x:4222", JobID: "j", StateURI: "file:///tmp/x"}
	for name, change := range map[string]func(*Options){
		"no coordinators": func(o *Options) { o.Coordinators = []string{" , "} },
		"bad job id":      func(o *Options) { o.JobID = "a b" },
		"no NATS":         func(o *Options) { o.NATSURL = "" },
		"no state":        func(o *Options) { o.StateURI = "" },
		"bad worker id":   func(o *Options) { o.WorkerID = "wörker" },
	} {
		o := good
		change(&o)
		if _, err := NewWorker(o); err == nil || !strings.HasPrefix(err.Error(), "MALFORMED") {
			t.Errorf("%s: %v, want MALFORMED", name, err)
		}
	}
	w, err := NewWorker(good)
	if err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(w.opts.WorkerID, ":"); len(parts) != 3 {
		t.Errorf("default worker id %q, want host:pid:random", w.opts.WorkerID)
	}
	if err := w.AddTask("t", struct{}{}); err == nil {
		t.Error("a task that is neither Task nor Source was added")
	}
	if err := w.AddTask("t", countingTask{}); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTask("t", countingTask{}); err == nil {
		t.Error("a task id was added twice")
	}
}
