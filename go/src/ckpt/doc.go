// Package ckpt runs tasks of a ckpt job in a Go process: the worker side
// of the protocol in proto/ckpt/v1 (see proto/PROTOCOL.md).
//
// A Worker attaches to the job's coordinator (following the leader among
// several), restores its tasks when the coordinator says so, reads and
// writes records on the job's NATS data subjects, aligns barriers in the
// job's checkpoint mode, snapshots each task's state (its KeyedState, or
// what its Snapshotter returns) to a local directory or a JetStream
// Object Store bucket with a SHA-256 checksum, and acknowledges every
// checkpoint in its session. Tasks implement Task, or Source for a task
// without inputs; the optional interfaces in task.go add their own state,
// checkpoint hooks and declines.
//
//	w, err := ckpt.NewWorker(ckpt.Options{
//		Coordinators: []string{"127.0.0.1:7070"},
//		NATSURL:      "nats://127.0.0.1:4222",
//		JobID:        "numbers",
//		StateURI:     "file:///var/lib/ckpt-numbers",
//	})
//	w.AddTask("src", numbers{})
//	w.AddTask("count", counter{})
//	err = w.Run(ctx) // nil once the job is canceled or ctx ends
//
// See go/README.md for installation (Debian's Go packages, GOPATH mode),
// a complete example, and what is not supported.
package ckpt
