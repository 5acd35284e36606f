package ckpt

import (
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	nats "github.com/nats-io/nats.go"
)

func TestDecodeCredit(t *testing.T) {
	good := map[string]credit{
		`{"epoch":3,"processed":10,"window":64}`:                  {3, 10, 64},
		`{"window":1,"processed":0,"epoch":0,"extra":"x"}`:        {0, 0, 1},
		`{"epoch":1e1,"processed":2.0,"window":9007199254740991}`: {10, 2, maxSafeInteger},
	}
	for in, want := range good {
		if got, why := decodeCredit([]byte(in)); why != "" || got != want {
			t.Errorf("decodeCredit(%s) = %+v %q, want %+v", in, got, why, want)
		}
	}
	bad := []string{
		``, `[]`, `null`, `"x"`, `{}`, `{"epoch":1,"processed":2}`, `{"epoch":1,"processed":2,"window":0}`,
		`{"epoch":-1,"processed":2,"window":3}`, `{"epoch":1.5,"processed":2,"window":3}`,
		`{"epoch":"1","processed":2,"window":3}`, `{"epoch":1,"processed":9007199254740992,"window":3}`,
		`{"epoch":1,"processed":2,"window":true}`, `{"epoch":1,"processed":2,"window":3`,
		`{"epoch":1,"processed":2,"window":3,"pad":"` + string(make([]byte, 300)) + `"}`,
	}
	for _, in := range bad {
		if got, why := decodeCredit([]byte(in)); why == "" {
			t.Errorf("decodeCredit(%q) = %+v, want an error", in, got)
		}
	}
}

// testNATS starts a nats-server for the test and connects to it.
func testNATS(t *testing.T) *nats.Conn {
	t.Helper()
	natsServer := lookFor("nats-server", "/usr/sbin/nats-server")
	if natsServer == "" {
		t.Skip("skipped: nats-server is not installed (make system-deps)")
	}
	repo, _ := filepath.Abs("../../..")
	port := freePort(t)
	startProcess(t, repo, natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		nc, err := nats.Connect(url)
		if err == nil {
			t.Cleanup(nc.Close)
			return nc
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect: %v", err)
		}
	}
}

// The writer's side of flow control on a real connection: opt-in by the
// reader's first credit of the epoch, blocked at sent - processed >=
// window, unblocked by a credit that makes room, forged and foreign
// credits dropped or clamped, lapsing at a new epoch.
func TestWriterFlowControl(t *testing.T) {
	nc := testNATS(t)
	p := newDataPlane(nc, "p.job", func(err error) { t.Error(err) })
	var mu sync.Mutex
	drops := map[string]int{}
	unblocked := 0
	p.onDrop = func(kind, reason string) { mu.Lock(); drops[kind+" "+reason]++; mu.Unlock() }
	p.onUnblocked = func(from string) {
		if from != "w" {
			t.Errorf("unblocked %q", from)
		}
		mu.Lock()
		unblocked++
		mu.Unlock()
	}
	p.registerOutputs("w", []string{"r", "s"})
	p.resetFlow(3)
	creditOf := func(to string, epoch, processed, window uint64) {
		t.Helper()
		p.onCredit("w", CreditSubject("p.job", "w", to), []byte(fmt.Sprintf(`{"epoch":%d,"processed":%d,"window":%d}`, epoch, processed, window)))
	}
	send := func(to string, n int, epoch uint64) {
		for i := 0; i < n; i++ {
			p.publishRecord("w", to, []byte("x"), epoch, "", false)
		}
	}
	expect := func(want bool, what string) {
		t.Helper()
		if got := p.blocked("w"); got != want {
			t.Fatalf("%s: blocked %v, want %v", what, got, want)
		}
	}

	send("r", 100, 3)
	expect(false, "a reader that sent no credit")
	creditOf("r", 3, 0, 4)
	expect(true, "100 sent, 0 processed, window 4")
	creditOf("r", 3, 97, 4)
	expect(false, "3 unprocessed of a window of 4")
	send("r", 1, 3)
	expect(true, "4 unprocessed of a window of 4")
	creditOf("r", 2, 101, 4)
	expect(true, "a credit of an older epoch")
	creditOf("r", 4, 101, 4)
	expect(true, "a credit of a later epoch")
	p.onCredit("w", CreditSubject("p.job", "w", "r"), []byte(`{"epoch":3,"processed":"101","window":4}`))
	expect(true, "an undecodable credit")
	p.onCredit("w", CreditSubject("p.job", "w", "x"), []byte(`{"epoch":3,"processed":101,"window":4}`))
	p.onCredit("w", CreditSubject("p.job", "v", "r"), []byte(`{"epoch":3,"processed":101,"window":4}`))
	expect(true, "credits of edges the writer does not write")
	// A forged count above what was sent counts as what was sent, and never goes back.
	creditOf("r", 3, 1000, 4)
	expect(false, "everything sent processed")
	creditOf("r", 3, 0, 4)
	send("r", 3, 3)
	expect(false, "a count that went back")
	send("r", 1, 3)
	expect(true, "4 sent since the last processed")
	// A window above 2^20 counts as 2^20.
	creditOf("r", 3, 0, 1<<40)
	expect(false, "a huge window")
	p.mu.Lock()
	window := p.out[[2]string{"w", "r"}].credit.window
	p.mu.Unlock()
	if window != MaxCreditWindow {
		t.Errorf("a window of 2^40 is taken as %d, want 2^20", window)
	}

	// Two outputs: blocked while either is over.
	creditOf("r", 3, 1<<30, 4)
	creditOf("s", 3, 0, 2)
	send("s", 2, 3)
	expect(true, "s over its window")
	creditOf("s", 3, 1, 2)
	expect(false, "s has room")

	// A new epoch: flow control lapses until the reader's first credit of it.
	send("r", 10, 3)
	expect(true, "r over its window")
	p.resetFlow(4)
	expect(false, "a new epoch")
	send("r", 10, 4)
	expect(false, "no credit yet in epoch 4")
	creditOf("r", 4, 2, 8)
	expect(true, "10 sent, 2 processed, window 8 in epoch 4")
	// Records of an older epoch are not counted.
	creditOf("r", 4, 3, 8)
	expect(false, "7 unprocessed")
	send("r", 5, 3)
	expect(false, "records of an older epoch")

	mu.Lock()
	defer mu.Unlock()
	for _, k := range []string{"credit other-epoch", "credit undecodable", "credit other-sender"} {
		if drops[k] == 0 {
			t.Errorf("no %s drop: %v", k, drops)
		}
	}
	if drops["credit other-epoch"] != 2 || drops["credit other-sender"] != 2 {
		t.Errorf("drops %v", drops)
	}
	if unblocked == 0 {
		t.Error("onUnblocked never called")
	}
}
