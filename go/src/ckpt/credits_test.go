package ckpt

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	nats "github.com/nats-io/nats.go"
)

// The credits of a Go reader on a real nats-server: JSON as
// proto/PROTOCOL.md §7.5 gives it, cumulative in the epoch, starting below
// zero by restored in-flight records (sent as 0), sent every quarter of the
// window, on tick for untold progress, and again after creditRepeat.
func TestReaderCreditsOnNATS(t *testing.T) {
	natsServer := lookFor("nats-server", "/usr/sbin/nats-server")
	if natsServer == "" {
		t.Skip("skipped: nats-server is not installed (make system-deps)")
	}
	repo, _ := filepath.Abs("../../..")
	port := freePort(t)
	startProcess(t, repo, natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var nc *nats.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if nc, err = nats.Connect(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("connect: %v", err)
		}
	}
	defer nc.Close()
	got := make(chan map[string]interface{}, 64)
	sub, err := nc.Subscribe("p.job.credit.*.r", func(m *nats.Msg) {
		var c map[string]interface{}
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Errorf("credit %q on %s: %v", m.Data, m.Subject, err)
		}
		c["from"] = m.Subject
		got <- c
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	next := func() map[string]interface{} {
		select {
		case c := <-got:
			return c
		case <-time.After(5 * time.Second):
			t.Fatal("no credit")
			return nil
		}
	}
	expect := func(c map[string]interface{}, from string, processed float64) {
		t.Helper()
		want := map[string]interface{}{"from": "p.job.credit." + from + ".r", "epoch": float64(3), "processed": processed, "window": float64(8)}
		for k, v := range want {
			if c[k] != v {
				t.Errorf("credit %v: %s is %v, want %v", c, k, c[k], v)
			}
		}
	}

	c := newReaderCredits(nc, "p.job", "r", []string{"a"}, 8, func(err error) { t.Error(err) })
	c.begin(3, map[string]int64{"a": 2})
	expect(next(), "a", 0)
	for i := 0; i < 4; i++ {
		c.processed("a")
	}
	// A quarter of the window (2) after the first credit: at -2+2 = 0, and at 2.
	expect(next(), "a", 0)
	expect(next(), "a", 2)
	c.processed("a")
	now := time.Now()
	c.tick(now)
	expect(next(), "a", 3)
	c.tick(now.Add(10 * time.Millisecond))
	c.tick(now.Add(creditRepeat))
	expect(next(), "a", 3)
	c.stop()
	c.processed("a")
	c.tick(now.Add(10 * creditRepeat))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case extra := <-got:
		t.Errorf("a stopped reader sent %v", extra)
	case <-time.After(200 * time.Millisecond):
	}
}
