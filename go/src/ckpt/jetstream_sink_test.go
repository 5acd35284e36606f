package ckpt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	nats "github.com/nats-io/nats.go"
)

// jsTestStreamContents is every message of a stream as "<msg id> <payload>".
func jsTestStreamContents(t *testing.T, nc *nats.Conn, stream string) []string {
	t.Helper()
	js, _ := nc.JetStream()
	info, err := js.StreamInfo(stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := js.GetMsg(stream, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Header.Get(nats.MsgIdHdr)+" "+string(m.Data))
	}
	return out
}

// jsTestWaitStream waits until the stream holds n messages and returns them.
func jsTestWaitStream(t *testing.T, nc *nats.Conn, stream string, n int) []string {
	t.Helper()
	js, _ := nc.JetStream()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := js.StreamInfo(stream)
		if err == nil && info.State.Msgs >= uint64(n) {
			return jsTestStreamContents(t, nc, stream)
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s does not hold %d messages: %v %v", stream, n, info, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsTestProcess(t *testing.T, task Task, ctx Context, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := task.Process(Record{Value: []byte(v), From: "count-0"}, ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func jsTestSnapshot(t *testing.T, task Task, ctx *jsTestContext, checkpointID uint64) []byte {
	t.Helper()
	ctx.checkpointID = checkpointID
	b, err := task.(Snapshotter).Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSinkMessageIDIsTheTypeScriptScheme(t *testing.T) {
	if got := SinkMessageID("wordcount", "sink", 12, 3); got != "wordcount/sink/12/3" {
		t.Errorf("got %q", got)
	}
}

func TestJetStreamSinkPublishesACheckpointOnlyWhenItCompletes(t *testing.T) {
	nc := jsTestServer(t)
	ctx := newJSTestContext(t, nc, "job", "sink")
	sink := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out", CreateStream: true})
	if err := sink.(Restorer).Restore(nil, ctx); err != nil {
		t.Fatal(err)
	}
	jsTestProcess(t, sink, ctx, "a 1", "b 1", "a 2")
	if len(jsTestSnapshot(t, sink, ctx, 1)) == 0 {
		t.Fatal("the snapshot of checkpoint 1 holds nothing")
	}
	jsTestProcess(t, sink, ctx, "c 1")
	time.Sleep(200 * time.Millisecond)
	if got := jsTestStreamContents(t, nc, "OUT"); len(got) != 0 {
		t.Fatalf("visible before its checkpoint completed: %q", got)
	}
	if err := sink.(CompletionListener).OnCheckpointComplete(1, ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"job/sink/1/0 a 1", "job/sink/1/1 b 1", "job/sink/1/2 a 2"}
	if got := jsTestWaitStream(t, nc, "OUT", 3); !reflect.DeepEqual(got, want) {
		t.Fatalf("after checkpoint 1: %q, want %q", got, want)
	}
	// Published groups leave the staging: checkpoint 2 holds only its own record.
	snapshot2 := jsTestSnapshot(t, sink, ctx, 2)
	staged, err := decodeSinkStaging(snapshot2)
	if err != nil {
		t.Fatal(err)
	}
	if ids := staged.pendingIDs(); !reflect.DeepEqual(ids, []uint64{2}) || staged.origin != "job" {
		t.Errorf("snapshot 2 holds groups %v of job %q", ids, staged.origin)
	}
	if err := sink.(CompletionListener).OnCheckpointComplete(2, ctx); err != nil {
		t.Fatal(err)
	}
	if got := jsTestWaitStream(t, nc, "OUT", 4); got[3] != "job/sink/2/0 c 1" {
		t.Errorf("after checkpoint 2: %q", got)
	}
	if b := jsTestSnapshot(t, sink, ctx, 3); len(b) != 0 {
		t.Errorf("nothing pending, yet a snapshot of %d bytes", len(b))
	}
	select {
	case err := <-ctx.failed:
		t.Fatalf("the sink failed: %v", err)
	default:
	}
}

func TestJetStreamSinkRestorePublishesPendingGroupsOnce(t *testing.T) {
	nc := jsTestServer(t)
	first := newJSTestContext(t, nc, "job", "sink")
	sink := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out", CreateStream: true})
	if err := sink.(Restorer).Restore(nil, first); err != nil {
		t.Fatal(err)
	}
	jsTestProcess(t, sink, first, "x 1", "y 1")
	snapshot1 := jsTestSnapshot(t, sink, first, 1)
	jsTestProcess(t, sink, first, "x 2")
	// Checkpoint 1 completes and is published; the worker dies before it hears of checkpoint 2's completion.
	if err := sink.(CompletionListener).OnCheckpointComplete(1, first); err != nil {
		t.Fatal(err)
	}
	jsTestWaitStream(t, nc, "OUT", 2)
	snapshot2 := jsTestSnapshot(t, sink, first, 2)
	first.cancel()

	// The job recovers from checkpoint 2: group 1 (if it were still pending) and group 2 are published again.
	second := newJSTestContext(t, nc, "job", "sink")
	again := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out", CreateStream: true})
	if err := again.(Restorer).Restore(snapshot2, second); err != nil {
		t.Fatal(err)
	}
	want := []string{"job/sink/1/0 x 1", "job/sink/1/1 y 1", "job/sink/2/0 x 2"}
	if got := jsTestStreamContents(t, nc, "OUT"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restore: %q, want %q", got, want)
	}
	// A restore from checkpoint 1 (already published) adds nothing.
	third := newJSTestContext(t, nc, "job", "sink")
	if err := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out"}).(Restorer).Restore(snapshot1, third); err != nil {
		t.Fatal(err)
	}
	if got := jsTestStreamContents(t, nc, "OUT"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after restoring a published checkpoint: %q, want %q", got, want)
	}
	// A snapshot another job took (a savepoint) is published under that job's ids.
	fourth := newJSTestContext(t, nc, "job-2", "sink")
	if err := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out"}).(Restorer).Restore(snapshot1, fourth); err != nil {
		t.Fatal(err)
	}
	if got := jsTestStreamContents(t, nc, "OUT"); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a new job restored the savepoint: %q, want %q", got, want)
	}
}

func TestJetStreamSinkFailsTheTaskWhenNoStreamAnswersAndKeepsTheRecords(t *testing.T) {
	nc := jsTestServer(t)
	ctx := newJSTestContext(t, nc, "job", "sink")
	sink := JetStreamSink(JetStreamSinkOptions{Stream: "NONE", Subject: "none", RetryFor: 600 * time.Millisecond})
	if err := sink.(Restorer).Restore(nil, ctx); err != nil {
		t.Fatal(err)
	}
	jsTestProcess(t, sink, ctx, "lost?")
	jsTestSnapshot(t, sink, ctx, 7)
	if err := sink.(CompletionListener).OnCheckpointComplete(7, ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ctx.failed:
		if !errors.Is(err, errNoStreamAnswered) || !strings.Contains(err.Error(), "publish checkpoint 7 to stream NONE") {
			t.Errorf("failure %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not fail")
	}
	staged, err := decodeSinkStaging(jsTestSnapshot(t, sink, ctx, 8))
	if err != nil {
		t.Fatal(err)
	}
	if ids := staged.pendingIDs(); !reflect.DeepEqual(ids, []uint64{7}) {
		t.Errorf("pending after the failure: %v, want [7]", ids)
	}
}

func TestSinkStagingEncodingRoundTripsAndReadsTheTypeScriptFormat(t *testing.T) {
	s := newSinkStaging()
	s.stage([]byte("a"))
	s.stage([]byte{})
	s.seal(3)
	s.stage([]byte("bc"))
	s.seal(9)
	s.stage([]byte("not sealed"))
	b, err := s.encode("wc")
	if err != nil {
		t.Fatal(err)
	}
	// What src/sdk/sink-staging.ts writes for the same staging.
	want := "434b5332" + "0002" + "7763" + "00000002" +
		"0000000000000003" + "00000002" + "00000001" + "61" + "00000000" +
		"0000000000000009" + "00000001" + "00000002" + "6263"
	if hex.EncodeToString(b) != want {
		t.Fatalf("encoded %x\nwant    %s", b, want)
	}
	d, err := decodeSinkStaging(b)
	if err != nil {
		t.Fatal(err)
	}
	groups := d.committable(100)
	if d.origin != "wc" || len(groups) != 2 || fmt.Sprintf("%q", groups[0].records) != `["a" ""]` || string(groups[1].records[0]) != "bc" {
		t.Errorf("decoded origin %q groups %+v", d.origin, groups)
	}
	v1, _ := hex.DecodeString("434b5331" + "00000001" + "0000000000000004" + "00000001" + "00000001" + "7a")
	d1, err := decodeSinkStaging(v1)
	if err != nil || d1.origin != "" || !bytes.Equal(d1.committable(4)[0].records[0], []byte("z")) {
		t.Errorf("CKS1: %v %+v", err, d1)
	}
	for name, bad := range map[string][]byte{
		"wrong header": []byte("CKS9\x00\x00\x00\x00"),
		"truncated":    b[:len(b)-1],
		"trailing":     append(append([]byte(nil), b...), 0),
		"empty":        {},
		"huge count":   append([]byte("CKS1"), 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := decodeSinkStaging(bad); !errors.Is(err, errMalformedSinkSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if b, err := newSinkStaging().encode("wc"); err != nil || len(b) != 0 {
		t.Errorf("an empty staging encodes as %x, %v", b, err)
	}
}

func TestJetStreamSinkPublishesACommitOnceAcrossANATSServerRestart(t *testing.T) {
	server := startJSTestNATS(t)
	nc := server.connect()
	ctx := newJSTestContext(t, nc, "job", "sink")
	sink := JetStreamSink(JetStreamSinkOptions{Stream: "OUT", Subject: "out", CreateStream: true, PublishTimeout: 300 * time.Millisecond})
	if err := sink.(Restorer).Restore(nil, ctx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 200; i++ {
		jsTestProcess(t, sink, ctx, fmt.Sprint(i))
		want = append(want, fmt.Sprintf("job/sink/1/%d %d", i, i))
	}
	jsTestSnapshot(t, sink, ctx, 1)
	server.kill()
	if err := sink.(CompletionListener).OnCheckpointComplete(1, ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	server.start()
	// What the first publication wrote on the lost connection is published again
	// after what it buffered: each record once, not necessarily in order.
	got := jsTestWaitStream(t, nc, "OUT", len(want))
	sort.Strings(got)
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the restart the stream holds %d messages: %q...", len(got), got[:3])
	}
	time.Sleep(500 * time.Millisecond)
	if got := jsTestStreamContents(t, nc, "OUT"); len(got) != len(want) {
		t.Errorf("%d messages, want %d", len(got), len(want))
	}
	select {
	case err := <-ctx.failed:
		t.Fatalf("the sink failed: %v", err)
	default:
	}
	if b := jsTestSnapshot(t, sink, ctx, 2); len(b) != 0 {
		t.Errorf("checkpoint 1 is still pending after its publication")
	}
}
