package ckpt

import (
	"strconv"
	"testing"
	"time"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
	nats "github.com/nats-io/nats.go"
)

type countingTask struct{ got chan Record }

func (c countingTask) Process(rec Record, ctx Context) error { c.got <- rec; return nil }

// A runtime with one task "sink" reading "a" and "b", in epoch 2, without a connection.
func edgeRuntime(t *testing.T) (*runtime, *runner, map[string]int, countingTask) {
	w := &Worker{opts: Options{JobID: "job", AbandonCallAfter: time.Second}, session: newSession(), logf: t.Logf}
	rt := &runtime{w: w, jobID: "job", logf: t.Logf, runners: map[string]*runner{}, received: map[[2]string]uint64{},
		triggerTimes: map[uint64]uint64{}, done: make(chan struct{}), backend: nil}
	drops := map[string]int{}
	rt.drops = newDropLog(nil)
	rt.drops.onDrop = func(kind, reason string) { drops[kind+" "+reason]++ }
	rt.intake = newControlIntake("job", 2, 1, rt, rt.drops)
	rt.intake.beliefs.confirm(5)
	rt.batches = newAckBatcher(rt, 1, time.Millisecond)
	task := countingTask{got: make(chan Record, 100)}
	r := newRunner(rt, "sink", task, []string{"a", "b"}, nil, modeAligned, 0)
	rt.runners["sink"], rt.order = r, []string{"sink"}
	if err := r.restore(2, 0, nil, "", time.Second); err != nil {
		t.Fatal(err)
	}
	return rt, r, drops, task
}

func edgeMsg(epoch uint64, data []byte, key string, barrier bool) *nats.Msg {
	h := nats.Header{EpochHeader: []string{strconv.FormatUint(epoch, 10)}}
	if key != "" {
		h[KeyHeader] = []string{EncodeKey(key)}
	}
	if barrier {
		h[BarrierHeader] = []string{"1"}
	}
	return &nats.Msg{Data: data, Header: h}
}

func barrierMsg(t *testing.T, epoch uint64, from string, id, records uint64) *nats.Msg {
	b, err := proto.Marshal(&ckptpb.Barrier{JobId: "job", CheckpointId: id, Epoch: epoch, FromTaskId: from, Records: records})
	if err != nil {
		t.Fatal(err)
	}
	return edgeMsg(epoch, b, "", true)
}

func TestEdgeIntakeDropsAndCounts(t *testing.T) {
	rt, r, drops, task := edgeRuntime(t)
	defer r.close()
	ab := [2]string{"a", "sink"}
	rt.receiveEdge(ab, edgeMsg(2, []byte("1"), "k é", false))
	rt.receiveEdge(ab, edgeMsg(1, []byte("old"), "", false))
	rt.receiveEdge(ab, &nats.Msg{Data: []byte("unmarked")})
	select {
	case rec := <-task.got:
		if string(rec.Value) != "1" || !rec.HasKey || rec.Key != "k é" || rec.From != "a" {
			t.Errorf("record %+v", rec)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the record of the current epoch was not processed")
	}
	if drops["record other-epoch"] != 1 || drops["record unmarked"] != 1 {
		t.Errorf("drops %v", drops)
	}
	rt.receiveEdge(ab, barrierMsg(t, 2, "b", 1, 1))              // on a's subject, from b
	rt.receiveEdge(ab, barrierMsg(t, 2, "a", 5+10001, 1))        // implausible id
	rt.receiveEdge(ab, edgeMsg(2, []byte{0xff, 0xff}, "", true)) // not a barrier
	for _, k := range []string{"barrier other-sender", "barrier implausible-id", "barrier undecodable"} {
		if drops[k] != 1 {
			t.Errorf("drops[%s] = %d (%v)", k, drops[k], drops)
		}
	}
	if failures := len(rt.w.session.outbox); failures != 0 {
		t.Fatalf("%d messages sent for drops", failures)
	}
	// a sent 2 records before its barrier, 1 arrived: the reader fails.
	rt.receiveEdge(ab, barrierMsg(t, 2, "a", 1, 2))
	deadline := time.Now().Add(5 * time.Second)
	for {
		rt.w.session.mu.Lock()
		n := len(rt.w.session.outbox)
		var f *ckptpb.TaskFailure
		if n > 0 {
			f = rt.w.session.outbox[0].GetFailure()
		}
		rt.w.session.mu.Unlock()
		if f != nil {
			if f.TaskId != "sink" || f.Epoch != 2 {
				t.Errorf("failure %+v", f)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lost records did not fail the reader")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
