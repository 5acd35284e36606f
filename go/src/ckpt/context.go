package ckpt

import (
	"context"
	"fmt"

	nats "github.com/nats-io/nats.go"
)

// taskContext is a task's Context in one epoch (one generation of its runner).
type taskContext struct {
	r      *runner
	gen    uint64
	epoch  uint64
	state  *mapState
	ctx    context.Context
	cancel context.CancelFunc
}

func (c *taskContext) TaskID() string        { return c.r.id }
func (c *taskContext) JobID() string         { return c.r.rt.jobID }
func (c *taskContext) Epoch() uint64         { return c.epoch }
func (c *taskContext) State() KeyedState     { return c.state }
func (c *taskContext) Outputs() []string     { return append([]string(nil), c.r.out.targets...) }
func (c *taskContext) Done() <-chan struct{} { return c.ctx.Done() }
func (c *taskContext) Ctx() context.Context  { return c.ctx }
func (c *taskContext) NATS() *nats.Conn      { return c.r.rt.nc }
func (c *taskContext) Fail(err error)        { c.r.fail(c.gen, err) }
func (c *taskContext) Logf(format string, args ...interface{}) {
	c.r.rt.logf("task %s: %s", c.r.id, fmt.Sprintf(format, args...))
}

func (c *taskContext) Emit(value []byte, opts ...EmitOption) error {
	var opt EmitOption
	if len(opts) > 0 {
		opt = opts[0]
	}
	targets, err := c.r.out.route(opt)
	if err != nil {
		return err
	}
	if !c.r.current(c.gen) {
		return nil
	}
	for _, to := range targets {
		c.r.rt.plane.publishRecord(c.r.id, to, value, c.epoch, opt.Key, opt.HasKey)
	}
	return nil
}

// snapshotContext adds the checkpoint id.
type snapshotContext struct {
	*taskContext
	checkpointID uint64
}

func (c snapshotContext) CheckpointID() uint64 { return c.checkpointID }
