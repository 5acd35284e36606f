package ckpt

import (
	"reflect"
	"testing"
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
		case actFinish:
			out = append(out, "finish"+string(rune('0'+act.checkpointID)))
		case actCancel:
			out = append(out, "cancel"+string(rune('0'+act.checkpointID)))
		}
	}
}

func TestAlignedHoldsBackAnInputAfterItsBarrier(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned)
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
	a := newInputAligner([]string{"a", "b"}, modeAtLeastOnce)
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
	a := newInputAligner([]string{"a", "b"}, modeUnaligned)
	a.offer("b", rec("x"))
	a.offer("a", barrier(1))
	a.offer("a", rec("2"))
	a.offer("b", rec("y"))
	a.offer("b", barrier(1))
	a.offer("b", rec("z"))
	got := drain(a)
	want := []string{"snapshot1", "b:x@1", "a:2", "b:y@1", "finish1", "b:z"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestAlignmentCancelledByANewerBarrier(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned)
	a.offer("a", barrier(1))
	a.offer("b", barrier(2))
	a.offer("a", barrier(2))
	got := drain(a)
	if want := []string{"cancel1", "snapshot2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

func TestAlignmentAbortReleasesHeldInputs(t *testing.T) {
	a := newInputAligner([]string{"a", "b"}, modeAligned)
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
