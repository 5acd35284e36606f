package ckpt

import (
	"testing"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
)

type recorded struct {
	triggers  []uint64
	completes []uint64
	aborts    []abortRange
	recovers  int
}

func (r *recorded) onTrigger(t *ckptpb.Trigger) { r.triggers = append(r.triggers, t.CheckpointId) }
func (r *recorded) onComplete(c *ckptpb.CheckpointComplete) {
	r.completes = append(r.completes, c.CheckpointId)
}
func (r *recorded) onAbort(_ *ckptpb.CheckpointAbort, a abortRange) { r.aborts = append(r.aborts, a) }
func (r *recorded) onRecover(*ckptpb.Recover)                       { r.recovers++ }

func bytesOf(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestIntake(epoch, term uint64) (*controlIntake, *recorded, map[string]int) {
	rec := &recorded{}
	drops := map[string]int{}
	d := newDropLog(nil)
	d.onDrop = func(kind, reason string) { drops[kind+" "+reason]++ }
	return newControlIntake("job", epoch, term, rec, d), rec, drops
}

func trig(job string, id, epoch, term uint64) *ckptpb.Trigger {
	return &ckptpb.Trigger{JobId: job, CheckpointId: id, Epoch: epoch, Term: term}
}

func TestIntakeTermsAndEpochs(t *testing.T) {
	in, rec, drops := newTestIntake(3, 10)
	in.receive("trigger", bytesOf(t, trig("job", 1, 3, 10)))
	in.receive("trigger", bytesOf(t, trig("job", 2, 3, 9)))  // deposed leader
	in.receive("trigger", bytesOf(t, trig("job", 3, 2, 10))) // old epoch
	in.receive("trigger", bytesOf(t, trig("other", 4, 3, 10)))
	in.receive("trigger", []byte{0xff, 0xff, 0xff})
	in.receive("trigger", bytesOf(t, trig("job", 5, 3, 11))) // held until term 11 is confirmed
	in.receive("trigger", bytesOf(t, trig("job", 6, 3, 12))) // held, then dropped at 11
	if len(rec.triggers) != 1 || rec.triggers[0] != 1 {
		t.Fatalf("triggers handled %v, want [1]", rec.triggers)
	}
	for _, k := range []string{"trigger stale-term", "trigger other-epoch", "trigger other-job", "trigger undecodable"} {
		if drops[k] != 1 {
			t.Errorf("drops[%s] = %d, want 1 (%v)", k, drops[k], drops)
		}
	}
	in.confirmTerm(11)
	if len(rec.triggers) != 2 || rec.triggers[1] != 5 {
		t.Fatalf("after confirming term 11: %v, want [1 5]", rec.triggers)
	}
	if drops["trigger unconfirmed-term"] != 1 {
		t.Errorf("the held message of term 12 was not dropped: %v", drops)
	}
	in.confirmTerm(11) // again: nothing
	in.receive("trigger", bytesOf(t, trig("job", 7, 3, 10)))
	if len(rec.triggers) != 2 {
		t.Errorf("a trigger of term 10 after term 11 was confirmed was handled")
	}
}

func TestIntakeHoldsAtMost64(t *testing.T) {
	in, rec, drops := newTestIntake(1, 1)
	for i := uint64(1); i <= 70; i++ {
		in.receive("trigger", bytesOf(t, trig("job", i, 1, 2)))
	}
	if drops["trigger unconfirmed-term"] != 6 {
		t.Errorf("evicted %d, want 6", drops["trigger unconfirmed-term"])
	}
	in.confirmTerm(2)
	if len(rec.triggers) != 64 || rec.triggers[0] != 7 || rec.triggers[63] != 70 {
		t.Errorf("released %d triggers from %v, want 64 from 7 to 70 in order", len(rec.triggers), rec.triggers[:1])
	}
}

func TestIntakeCheckpointIds(t *testing.T) {
	in, rec, drops := newTestIntake(1, 1)
	in.beliefs.confirmSession(5, 8) // confirmed up to 7
	in.receive("trigger", bytesOf(t, trig("job", 7+MaxCheckpointIDAhead, 1, 1)))
	in.receive("trigger", bytesOf(t, trig("job", 8+MaxCheckpointIDAhead, 1, 1)))
	in.receive("trigger", bytesOf(t, trig("job", 0, 1, 1)))
	if len(rec.triggers) != 1 || drops["trigger implausible-id"] != 2 {
		t.Fatalf("triggers %v drops %v: want the id within 10000 only", rec.triggers, drops)
	}
	// Completions count only for an accepted acknowledgement, once, and wait for its answer.
	complete := func(id uint64) []byte {
		return bytesOf(t, &ckptpb.CheckpointComplete{JobId: "job", CheckpointId: id, Epoch: 1, Term: 1})
	}
	in.receive("complete", complete(9))
	if len(rec.completes) != 0 || drops["complete not-acknowledged"] != 1 {
		t.Fatalf("a completion of an id never acknowledged counted")
	}
	in.ackSent(1, 9)
	in.receive("complete", complete(9))
	if len(rec.completes) != 0 {
		t.Fatalf("a completion counted before the acknowledgement's answer")
	}
	in.ackAnswered(1, 9, true)
	if len(rec.completes) != 1 || rec.completes[0] != 9 {
		t.Fatalf("the waiting completion did not count after the answer: %v", rec.completes)
	}
	in.receive("complete", complete(9))
	if len(rec.completes) != 1 {
		t.Errorf("a completion counted twice")
	}
	// An aborted id never completes.
	in.ackSent(1, 10)
	in.ackAnswered(1, 10, true)
	in.receive("abort", bytesOf(t, &ckptpb.CheckpointAbort{JobId: "job", CheckpointId: 10, Epoch: 1, Term: 1}))
	in.receive("complete", complete(10))
	if len(rec.completes) != 1 || len(rec.aborts) != 1 {
		t.Errorf("completes %v aborts %v: want the abort only", rec.completes, rec.aborts)
	}
	// A coordinator restart's abort stands for every id up to it, capped.
	in.receive("abort", bytesOf(t, &ckptpb.CheckpointAbort{JobId: "job", CheckpointId: 1 << 40, Epoch: 1, Term: 1,
		Reason: ckptpb.AbortReason_ABORT_REASON_COORDINATOR_RESTART}))
	last := rec.aborts[len(rec.aborts)-1]
	if !last.upTo || last.checkpointID != 10+MaxCheckpointIDAhead {
		t.Errorf("restart abort range %+v, want up to %d", last, 10+MaxCheckpointIDAhead)
	}
	// Recover is passed on and changes nothing.
	in.receive("recover", bytesOf(t, &ckptpb.Recover{JobId: "job", Epoch: 5, CheckpointId: 9, Term: 1}))
	if rec.recovers != 1 || in.beliefs.epoch != 1 {
		t.Errorf("recover moved the epoch to %d", in.beliefs.epoch)
	}
}

func TestBeliefsSourcesTakeEachTriggerOnce(t *testing.T) {
	b := newCheckpointBeliefs(1)
	if !b.takes("src", 3) {
		t.Fatal("a fresh source does not take trigger 3")
	}
	b.took("src", 3)
	if b.takes("src", 3) || b.takes("src", 2) || !b.takes("src", 4) {
		t.Error("a source takes a trigger it took, or an older one, or not a newer one")
	}
	if !b.mayDecline(3) || b.mayDecline(3) {
		t.Error("mayDecline is not once per id")
	}
	b.confirm(20)
	if b.mayDecline(15) {
		t.Error("a confirmed id may be declined")
	}
	b.restored()
	if !b.takes("src", 3) {
		t.Error("a restore did not reset what the sources took")
	}
}
