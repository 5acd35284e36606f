package ckpt

import (
	"context"

	nats "github.com/nats-io/nats.go"
)

// Record is one record a task receives.
type Record struct {
	// Value is the payload, in the producer's own encoding.
	Value []byte
	// Key is the partitioning key the producer gave; HasKey tells whether it gave one.
	Key    string
	HasKey bool
	// From is the task that produced the record.
	From string
}

// SourcePosition is a recorded read position in one input of a source task.
type SourcePosition struct {
	// Input names the input, e.g. "<stream>/<subject>" for a JetStream source.
	Input string
	// Offset is the last message of the input included in the snapshot;
	// reading resumes after it.
	Offset uint64
}

// SourceMessage is one message a source read, with its position.
type SourceMessage struct {
	// Input is the input it came from (the Input of its SourcePosition).
	Input string
	// Offset is its position in the input; offsets of one input increase.
	Offset uint64
	// Value is whatever the source's Read produced; Handle receives it back.
	Value interface{}
}

// EmitOption says where Emit sends a record.
type EmitOption struct {
	// To names one downstream task; it takes precedence over Key.
	To string
	// Key partitions the record: it goes to one downstream task, the same
	// for the same key in every language (see proto/PROTOCOL.md).
	Key    string
	HasKey bool
}

// ToTask sends a record to one named downstream task.
func ToTask(taskID string) EmitOption { return EmitOption{To: taskID} }

// ByKey partitions a record by key.
func ByKey(key string) EmitOption { return EmitOption{Key: key, HasKey: true} }

// Context is what a task sees while it runs in one epoch. A restore starts a
// new Context; Done is closed when this one's epoch ends for the task.
type Context interface {
	TaskID() string
	JobID() string
	Epoch() uint64
	// State is the task's keyed state. Unless the task implements
	// Snapshotter and Restorer, the runtime snapshots and restores it.
	State() KeyedState
	// Outputs lists the downstream tasks, sorted.
	Outputs() []string
	// Done is closed when this context's epoch ends (recovery, failure, stop).
	Done() <-chan struct{}
	// Ctx is a context.Context cancelled with Done, for I/O calls.
	Ctx() context.Context
	// NATS is the worker's connection, for sources and sinks.
	NATS() *nats.Conn
	// Emit sends a record downstream: to every downstream task, to the
	// one named by ToTask, or to the one ByKey chooses. A record emitted by
	// a context whose epoch has ended is dropped. It returns an error for a
	// ToTask naming a task that does not read from this one.
	Emit(value []byte, opts ...EmitOption) error
	// Fail fails the task from work it runs outside the runtime's calls:
	// the job recovers. Ignored once the context's epoch has ended.
	Fail(err error)
	// Logf logs a line tagged with the task.
	Logf(format string, args ...interface{})
}

// SnapshotContext is the context of a snapshot: it also names the checkpoint.
type SnapshotContext interface {
	Context
	CheckpointID() uint64
}

// KeyedState is a task's keyed state: string keys, byte values. The runtime
// snapshots it at every checkpoint and restores it on recovery.
type KeyedState interface {
	Get(key string) ([]byte, bool)
	Set(key string, value []byte)
	Delete(key string)
	Len() int
	// Range calls f for every entry until f returns false; the order is unspecified.
	Range(f func(key string, value []byte) bool)
}

// Task processes records from its inputs, one at a time, in order per
// input. An error fails the task and rolls the job back.
type Task interface {
	Process(rec Record, ctx Context) error
}

// Source is a task without inputs that reads an external input. The runtime
// calls Read once the job starts in an epoch; Read sends messages to out
// until ctx.Done() and returns. The runtime hands each message to Handle, one
// at a time (snapshots fall between two messages), and records the offset of
// the last handled message of each input in every snapshot. Returning nil
// from Read ends the source.
type Source interface {
	Read(ctx Context, positions []SourcePosition, out chan<- SourceMessage) error
	Handle(msg SourceMessage, ctx Context) error
}

// Snapshotter serialises a task's own state for a checkpoint. It runs while
// the task processes nothing else; the returned bytes must not change
// afterwards. Empty bytes mean no state. Without it, the runtime stores the
// task's KeyedState.
type Snapshotter interface {
	Snapshot(ctx SnapshotContext) ([]byte, error)
}

// Restorer restores a task's own state from snapshot bytes, or from nil when
// the job starts without a checkpoint or the snapshot was empty.
type Restorer interface {
	Restore(state []byte, ctx Context) error
}

// CompletionListener is told that a checkpoint the task acknowledged committed.
type CompletionListener interface {
	OnCheckpointComplete(checkpointID uint64, ctx Context) error
}

// AbortListener is told that a checkpoint will never complete.
type AbortListener interface {
	OnCheckpointAbort(checkpointID uint64, ctx Context) error
}

// Decliner lets a task decline a checkpoint instead of snapshotting it: a
// non-empty reason declines, and the coordinator aborts the checkpoint.
type Decliner interface {
	Decline(ctx SnapshotContext) (reason string)
}

// RestoreListener is told that the task was restored in a new epoch (from
// checkpoint checkpointID, 0 for none, with the positions a source resumes
// after), once its state is back and before the task is reported ready.
// An error fails the restore.
type RestoreListener interface {
	OnRestored(checkpointID uint64, positions []SourcePosition, ctx Context) error
}
