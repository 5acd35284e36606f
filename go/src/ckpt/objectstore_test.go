package ckpt

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	nats "github.com/nats-io/nats.go"
)

func TestObjectStoreStoresAndVerifies(t *testing.T) {
	natsServer := lookFor("nats-server", "/usr/sbin/nats-server")
	if natsServer == "" {
		t.Skip("object store test skipped: nats-server is not installed (make system-deps)")
	}
	port := freePort(t)
	startProcess(t, t.TempDir(), natsServer, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir())
	var nc *nats.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		nc, err = nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	backend, err := newStateBackend("nats-obj://ckpt-test", nc)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("state "), 50000) // several chunks
	h, err := backend.put(pieceKey{"job", "task", 3, 1}, data)
	if err != nil {
		t.Fatal(err)
	}
	if h.Uri != "nats-obj://ckpt-test/job/task/3-1" || h.SizeBytes != uint64(len(data)) || h.Checksum != Checksum(data) {
		t.Errorf("handle %+v", h)
	}
	got, err := backend.get(h, "job")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if _, err := backend.get(h, "other"); err == nil {
		t.Error("another job's piece was read")
	}
	bad := *h
	bad.Checksum = Checksum([]byte("x"))
	if _, err := backend.get(&bad, "job"); err == nil || !strings.Contains(err.Error(), "CORRUPT") {
		t.Errorf("a checksum mismatch was not refused: %v", err)
	}
	short := *h
	short.SizeBytes--
	short.RawSizeBytes--
	if _, err := backend.get(&short, "job"); err == nil || !strings.Contains(err.Error(), "CORRUPT") {
		t.Errorf("a size mismatch was not refused: %v", err)
	}
	missing := *h
	missing.Uri = "nats-obj://ckpt-test/job/task/9-9"
	if _, err := backend.get(&missing, "job"); err == nil || !strings.Contains(err.Error(), "NOT_FOUND") {
		t.Errorf("a missing piece: %v", err)
	}
}
