package ckpt

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ckpt/ckptpb"
)

func TestLocalDirectoryStoresAndVerifies(t *testing.T) {
	dir := t.TempDir()
	d, err := newLocalDirectory(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("some state")
	h, err := d.put(pieceKey{"job", "task", 4, 2}, data)
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + filepath.Join(dir, "job", "task", "4-2.snap"); h.Uri != want {
		t.Errorf("uri %s, want %s", h.Uri, want)
	}
	if h.SizeBytes != uint64(len(data)) || h.Checksum != Checksum(data) || !strings.HasPrefix(h.Checksum, "sha256:") ||
		len(h.Checksum) != 7+64 || h.Compression != ckptpb.StateCompression_STATE_COMPRESSION_NONE || h.RawSizeBytes != uint64(len(data)) {
		t.Errorf("handle %+v", h)
	}
	got, err := d.get(h, "job")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if _, err := d.get(h, "other-job"); err == nil || !strings.Contains(err.Error(), "not of job other-job") {
		t.Errorf("another job's piece was read: %v", err)
	}
	bad := *h
	bad.Checksum = Checksum([]byte("other"))
	if _, err := d.get(&bad, "job"); err == nil || !strings.Contains(err.Error(), "CORRUPT") {
		t.Errorf("a checksum mismatch was not refused: %v", err)
	}
	// A piece changed on disk is refused.
	if err := os.WriteFile(filepath.Join(dir, "job", "task", "4-2.snap"), []byte("some stat3"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.get(h, "job"); err == nil || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("a corrupted piece was read: %v", err)
	}
	lz4 := *h
	lz4.Compression = ckptpb.StateCompression_STATE_COMPRESSION_LZ4
	if _, err := d.get(&lz4, "job"); err == nil || !strings.Contains(err.Error(), "LZ4") {
		t.Errorf("an LZ4 piece was not refused clearly: %v", err)
	}
	outside := *h
	outside.Uri = "file:///etc/passwd"
	if _, err := d.get(&outside, "job"); err == nil {
		t.Error("a piece outside the directory was read")
	}
}

func TestLocalDirectoryListsAndDiscardsOnlyTheJobsPieces(t *testing.T) {
	dir := t.TempDir()
	d, _ := newLocalDirectory(dir)
	mine, _ := d.put(pieceKey{"job", "a", 1, 1}, []byte("1"))
	other, _ := d.put(pieceKey{"job2", "a", 1, 1}, []byte("2"))
	stale := filepath.Join(dir, "job", "a", "2-1.snap.0123456789ab.tmp")
	if err := os.WriteFile(stale, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	_ = os.Chtimes(stale, old, old)
	pieces, err := d.list("job", time.Minute)
	if err != nil || len(pieces) != 1 || pieces[0].uri != mine.Uri {
		t.Fatalf("list: %v %v, want only %s", pieces, err, mine.Uri)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("the stale temporary file was not deleted")
	}
	n, err := d.discard("job", []string{other.Uri, mine.Uri, "file:///etc/passwd", "nats-obj://b/job/a/1-1"})
	if err != nil || n != 1 {
		t.Fatalf("discard: %d %v, want 1 deleted", n, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job2", "a", "1-1.snap")); err != nil {
		t.Error("another job's piece was deleted")
	}
}

func TestStateURIs(t *testing.T) {
	for _, uri := range []string{"", "file://relative/dir", "s3://bucket", "nats-obj://bad bucket"} {
		if _, err := newStateBackend(uri, nil); err == nil {
			t.Errorf("state %q accepted", uri)
		}
	}
}

func TestKeyedStateCodec(t *testing.T) {
	s := newMapState()
	if b := encodeKeyedState(s); len(b) != 0 {
		t.Errorf("an empty state encodes as %d bytes, want none", len(b))
	}
	s.Set("b", []byte("2"))
	s.Set("a", []byte{})
	s.Set("日本", []byte{0, 1, 2})
	back, err := decodeKeyedState(encodeKeyedState(s))
	if err != nil || back.Len() != 3 {
		t.Fatalf("decode: %v, %d entries", err, back.Len())
	}
	if v, _ := back.Get("日本"); !bytes.Equal(v, []byte{0, 1, 2}) {
		t.Errorf("value %v", v)
	}
	enc := encodeKeyedState(s)
	if _, err := decodeKeyedState(enc[:len(enc)-1]); err == nil {
		t.Error("a truncated snapshot decoded")
	}
	if _, err := decodeKeyedState([]byte("XXXX")); err == nil {
		t.Error("a snapshot with a wrong header decoded")
	}
}

func TestUnalignedEnvelope(t *testing.T) {
	records := []inFlightRecord{{from: "a", key: "k", hasKey: true, value: []byte("1")}, {from: "b", value: []byte("22")}}
	state, back, err := decodeUnaligned(encodeUnaligned([]byte("state"), records))
	if err != nil || string(state) != "state" || len(back) != 2 || back[0].key != "k" || !back[0].hasKey || back[1].hasKey || string(back[1].value) != "22" {
		t.Fatalf("round trip: %q %+v %v", state, back, err)
	}
	// The bytes the TypeScript SDK's encodeUnalignedSnapshot writes for state "s" and one record from "a", no key, value "v".
	ts := []byte{'C', 'K', 'U', '1', 0, 0, 0, 1, 's', 0, 0, 0, 1, 0, 1, 'a', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'v'}
	if got := encodeUnaligned([]byte("s"), []inFlightRecord{{from: "a", value: []byte("v")}}); !bytes.Equal(got, ts) {
		t.Errorf("encoding %v, want %v", got, ts)
	}
}

// Which unmarked pieces a restore reads as holding in-flight records (proto/PROTOCOL.md §12).
func TestUnmarkedPiecesHoldInFlightRecordsOnlyWhereCertain(t *testing.T) {
	keyed := encodeKeyedState(newMapState())
	old := encodeUnaligned(keyed, []inFlightRecord{{from: "a", value: []byte("v")}})
	own := func(job string) *ckptpb.StateHandle {
		return &ckptpb.StateHandle{Uri: "file:///var/lib/ckpt/" + job + "/sum-0/3-1.snap"}
	}
	objectStore := &ckptpb.StateHandle{Uri: "nats-obj://bucket/job-b/sum-0/3-1"}
	cases := []struct {
		name string
		h    *ckptpb.StateHandle
		data []byte
		how  restoreHow
		want bool
	}{
		{"aligned job, keyed piece with the header", own("job-b"), old, restoreHow{jobID: "job-b", keyed: true}, false},
		{"aligned job, own snapshot of its own checkpoint", own("job-b"), []byte("x"), restoreHow{jobID: "job-b"}, false},
		{"unaligned job, keyed piece with the header", own("job-b"), old, restoreHow{jobID: "job-b", unaligned: true, keyed: true}, true},
		{"unaligned job, keyed piece of plain state", own("job-b"), keyed, restoreHow{jobID: "job-b", unaligned: true, keyed: true}, false},
		{"unaligned job from a savepoint, keyed plain piece", own("job-a"), keyed, restoreHow{jobID: "job-b", sourceJobID: "job-a", unaligned: true, keyed: true}, false},
		{"unaligned job from a savepoint, keyed old piece", own("job-a"), old, restoreHow{jobID: "job-b", sourceJobID: "job-a", unaligned: true, keyed: true}, true},
		{"unaligned job, own snapshot of its own checkpoint", own("job-b"), []byte("x"), restoreHow{jobID: "job-b", unaligned: true}, true},
		{"unaligned job, own snapshot in the object store", objectStore, []byte("x"), restoreHow{jobID: "job-b", unaligned: true}, true},
		{"unaligned job from a savepoint, own snapshot", own("job-a"), []byte("x"), restoreHow{jobID: "job-b", sourceJobID: "job-a", unaligned: true}, false},
		{"unaligned job from a savepoint, own snapshot with the header", own("job-a"), old, restoreHow{jobID: "job-b", sourceJobID: "job-a", unaligned: true}, false},
		{"unaligned job, own snapshot of a savepoint of its own", own("job-b"), []byte("x"), restoreHow{jobID: "job-b", sourceJobID: "job-b", unaligned: true}, false},
		{"unaligned job, own snapshot of another job's piece", own("job-a"), []byte("x"), restoreHow{jobID: "job-b", unaligned: true}, false},
		{"unaligned job, own snapshot at a uri of another shape", &ckptpb.StateHandle{Uri: "file:///x"}, []byte("x"), restoreHow{jobID: "job-b", unaligned: true}, false},
		{"marked piece: read by its marker, not this rule", &ckptpb.StateHandle{Uri: own("job-b").Uri, InFlightRecords: true}, old, restoreHow{jobID: "job-b", unaligned: true, keyed: true}, false},
	}
	for _, c := range cases {
		if got := unmarkedHoldsInFlight(c.h, c.data, c.how); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if owner, ok := pieceOwner("nats-obj://bucket/job-b/sum-0/3-1"); !ok || owner != "job-b" {
		t.Errorf("pieceOwner: %q %v", owner, ok)
	}
	if _, ok := pieceOwner("file:///a b/c/d"); ok {
		t.Error("pieceOwner of a uri with a space in its job segment")
	}
}
