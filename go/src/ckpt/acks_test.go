package ckpt

import (
	"fmt"
	"testing"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
)

func TestAcknowledgementsSplitBelowTheLimit(t *testing.T) {
	var snaps []*ckptpb.TaskSnapshot
	for i := 0; i < 300; i++ {
		snaps = append(snaps, &ckptpb.TaskSnapshot{
			TaskId:    fmt.Sprintf("s%03d", i),
			State:     newHandle(fmt.Sprintf("file:///var/lib/ckpt/job/s%03d/12-3.snap", i), []byte("state")),
			Positions: []*ckptpb.SourcePosition{{Input: "counter", Offset: 123456}},
			Metrics:   &ckptpb.SnapshotMetrics{SyncMs: 1, AsyncMs: 2, StateSizeBytes: 5, PersistedBytes: 5},
		})
	}
	const limit = 32768
	runs := splitBySize(snaps, limit)
	if len(runs) < 2 {
		t.Fatalf("%d runs, want the acknowledgement split", len(runs))
	}
	n := 0
	for _, run := range runs {
		n += len(run)
		msg := &ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Acknowledge{Acknowledge: &ckptpb.SessionAcknowledge{
			RequestId: 1 << 40, Epoch: 1 << 30, CheckpointId: 1 << 40, Snapshots: run}}}
		if size := proto.Size(msg); size > limit {
			t.Errorf("a message of %d bytes, above %d", size, limit)
		}
	}
	if n != len(snaps) {
		t.Errorf("%d snapshots sent, want %d", n, len(snaps))
	}
	if runs := splitBySize(snaps[:1], 10); len(runs) != 1 || len(runs[0]) != 1 {
		t.Error("a snapshot bigger than the limit on its own is not sent alone")
	}
}
