package ckpt

import (
	"reflect"
	"testing"
	"time"
)

func rec(v string) inputItem      { return inputItem{record: Record{Value: []byte(v)}} }
func barrier(id uint64) inputItem { return inputItem{barrier: true, checkpointID: id} }

// drain returns what the aligner does next until it has nothing, as short strings.
func drain(a *inputAligner) []string {
	var out []string
	for {
		act, ok := a.next()
		if !ok {
			return out
		}
		switch act.kind {
		case actProcess:
			s := act.input + ":" + string(act.record.Value)
			for _, id := range act.inFlightFor {
				s += "@" + string(rune('0'+id))
			}
			out = append(out, s)
		case actSnapshot:
			out = append(out, "snapshot"+string(rune('0'+act.checkpointID)))
		case actInFlight:
			s := "inflight" + string(rune('0'+act.checkpointID)) + " " + act.input + ":"
			for _, r := range act.records {
				s += string(r.Value)
			}
			out = append(out, s)
		case actFinish:
			out = append(out, "finish"+string(rune('0'+act.checkpointID)))
		case actCancel:
			out = append(out, "cancel"+string(rune('0'+act.checkpointID)))
		}
	}
}

func TestAlignedHoldsBackAnInputAfterItsBarrier(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned, 0)
	a.offer("a", rec("1"))
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	a.offer("b", rec("x"))
	got := drain(a)
	if want := []string{"a:1", "b:x"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("before b's barrier: %v, want %v (a:2 held back)", got, want)
	}
	if blocked := a.blockedInputs(); !reflect.DeepEqual(blocked, []string{"a"}) {
		t.Errorf("blocked %v, want [a]", blocked)
	}
	a.offer("b", barrier(1))
	if got, want := drain(a), []string{"snapshot1", "a:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after b's barrier: %v, want %v", got, want)
	}
}

func TestAtLeastOnceHoldsNothingBack(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAtLeastOnce, 0)
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	if got, want := drain(a), []string{"a:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	a.offer("b", barrier(1))
	if got, want := drain(a), []string{"snapshot1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestUnalignedSnapshotsAtTheFirstBarrierAndRecordsInFlight(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeUnaligned, 0)
	a.offer("b", rec("x"))
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	a.offer("b", rec("y"))
	a.offer("b", barrier(1))
	a.offer("b", rec("z"))
	got := drain(a)
	// The barriers are taken when offered: b's records queued ahead of its
	// barrier go into the snapshot at once, and the checkpoint finishes
	// without waiting for them to be processed.
	want := []string{"snapshot1", "inflight1 b:xy", "finish1", "a:2", "b:x", "b:y", "b:z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestUnalignedRecordsTakenBeforeTheLaterBarrierAreInFlight(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeUnaligned, 0)
	a.offer("a", barrier(1))
	if got, want := drain(a), []string{"snapshot1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	a.offer("b", rec("x"))
	if got, want := drain(a), []string{"b:x@1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	a.offer("b", barrier(1))
	if got, want := drain(a), []string{"finish1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

// clock is a settable clock for the aligner.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestAlignedTimeoutTakesTheCheckpointUnaligned(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	a := newInputAligner([]string{"a", "b"}, modeAligned, 100*time.Millisecond)
	a.now = c.now
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	a.offer("b", rec("x"))
	a.offer("b", rec("y"))
	a.offer("b", barrier(1))
	a.offer("b", rec("z"))
	// The task is slow: nothing of b is processed yet when the timeout runs out.
	if at, ok := a.nextTimeout(); !ok || !at.Equal(c.t.Add(100*time.Millisecond)) {
		t.Fatalf("next timeout %v %v, want 100 ms after the first barrier", at, ok)
	}
	c.t = c.t.Add(150 * time.Millisecond)
	act, ok := a.nextControl()
	if !ok || act.kind != actSnapshot || !act.unaligned || act.checkpointID != 1 || act.alignmentMs != 150 {
		t.Fatalf("after the timeout: %+v %v, want an unaligned snapshot of 1 after 150 ms", act, ok)
	}
	got := drain(a)
	want := []string{"inflight1 b:xy", "finish1", "b:x", "a:2", "b:y", "b:z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	if _, ok := a.nextTimeout(); ok {
		t.Error("a timeout is still due")
	}
}

func TestAlignedTimeoutBeforeTheOtherBarrierArrives(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	a := newInputAligner([]string{"a", "b"}, modeAligned, 100*time.Millisecond)
	a.now = c.now
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	if got := drain(a); len(got) != 0 {
		t.Fatalf("%v, want nothing while a is held back", got)
	}
	c.t = c.t.Add(100 * time.Millisecond)
	a.offer("b", rec("x"))
	got := drain(a)
	// a is released, b's records before its barrier are in flight.
	if want := []string{"snapshot1", "b:x@1", "a:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	a.offer("b", barrier(1))
	if got, want := drain(a), []string{"finish1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestSavepointsAndAlignedCheckpointsInTimeDoNotTimeOut(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	a := newInputAligner([]string{"a", "b"}, modeAligned, 100*time.Millisecond)
	a.now = c.now
	a.offer("a", inputItem{barrier: true, checkpointID: 1, savepoint: true})
	if _, ok := a.nextTimeout(); ok {
		t.Fatal("a savepoint has a timeout")
	}
	c.t = c.t.Add(time.Second)
	a.offer("b", inputItem{barrier: true, checkpointID: 1, savepoint: true})
	a.offer("a", barrier(2))
	a.offer("b", barrier(2))
	c.t = c.t.Add(50 * time.Millisecond)
	if got, want := drain(a), []string{"snapshot1", "snapshot2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
	c.t = c.t.Add(time.Second)
	if got := drain(a); len(got) != 0 {
		t.Fatalf("%v after both aligned", got)
	}
}

func TestWithoutATimeoutAlignedNeverTimesOut(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned, 0)
	a.offer("a", barrier(1))
	if _, ok := a.nextTimeout(); ok {
		t.Fatal("a timeout without one configured")
	}
	u := newInputAligner([]string{"a", "b"}, modeAtLeastOnce, time.Second)
	u.offer("a", barrier(1))
	if _, ok := u.nextTimeout(); ok {
		t.Fatal("at-least-once has a timeout")
	}
}

func TestAlignmentCancelledByANewerBarrier(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned, 0)
	a.offer("a", barrier(1))
	a.offer("b", barrier(2))
	a.offer("a", barrier(2))
	got := drain(a)
	if want := []string{"cancel1", "snapshot2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestAlignmentAbortReleasesHeldInputs(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned, 0)
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	if got := drain(a); len(got) != 0 {
		t.Fatalf("%v, want nothing while a is held back", got)
	}
	a.cancel(1, false)
	a.offer("b", barrier(1))
	if got, want := drain(a), []string{"a:2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("after the abort: %v, want %v", got, want)
	}
}
