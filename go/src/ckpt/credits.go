package ckpt

import (
	"strconv"
	"time"

	nats "github.com/nats-io/nats.go"
)

// Flow control, the reader's side (proto/PROTOCOL.md §7.5): for each input
// edge, a task counts the records it has taken for processing in the
// current epoch and sends the edge's writer that cumulative count with its
// window on <prefix>.credit.<from>.<to>. A writer that honours credits
// then keeps at most a window of the edge's records unprocessed here. The
// writer's side is in flow_writer.go.

// DefaultFlowControlWindow is the window of Options.FlowControlWindow when it is 0.
const DefaultFlowControlWindow = 1024

const (
	// creditRepeat: a credit is sent at least this often, progress or not.
	creditRepeat = time.Second
	// creditTick: how often untold progress is sent.
	creditTick = 50 * time.Millisecond
)

// CreditSubject is the credit subject of the edge from -> to under a job's control prefix.
func CreditSubject(prefix, from, to string) string { return prefix + ".credit." + from + "." + to }

type inputCredit struct {
	subject string
	// processed starts below 0 by the records a restore put back from an unaligned snapshot.
	processed int64
	told      int64
	toldAt    time.Time
}

// readerCredits are the credits of one task's inputs; its runner's lock guards them.
type readerCredits struct {
	nc      *nats.Conn
	window  int64
	step    int64
	inputs  map[string]*inputCredit
	epoch   uint64
	active  bool
	onError func(error)
}

func newReaderCredits(nc *nats.Conn, prefix, reader string, inputs []string, window int64, onError func(error)) *readerCredits {
	c := &readerCredits{nc: nc, window: window, step: window / 4, inputs: map[string]*inputCredit{}, onError: onError}
	if c.step < 1 {
		c.step = 1
	}
	for _, from := range inputs {
		c.inputs[from] = &inputCredit{subject: CreditSubject(prefix, from, reader)}
	}
	return c
}

// begin: the task runs in epoch from now on; counts start over and a first credit goes out.
func (c *readerCredits) begin(epoch uint64, restored map[string]int64) {
	c.epoch, c.active = epoch, true
	now := time.Now()
	for from, in := range c.inputs {
		in.processed = -restored[from]
		c.send(in, now)
	}
}

// stop: no credits until the next begin.
func (c *readerCredits) stop() { c.active = false }

// processed: the task took one record of input.
func (c *readerCredits) processed(input string) {
	in := c.inputs[input]
	if in == nil {
		return
	}
	in.processed++
	if c.active && in.processed-in.told >= c.step {
		c.send(in, time.Now())
	}
}

// tick sends untold progress, and repeats credits not sent for creditRepeat.
func (c *readerCredits) tick(now time.Time) {
	if !c.active {
		return
	}
	for _, in := range c.inputs {
		if in.processed > in.told || now.Sub(in.toldAt) >= creditRepeat {
			c.send(in, now)
		}
	}
}

func (c *readerCredits) send(in *inputCredit, now time.Time) {
	processed := in.processed
	if processed < 0 {
		processed = 0
	}
	in.told, in.toldAt = in.processed, now
	data := make([]byte, 0, 64)
	data = append(data, `{"epoch":`...)
	data = strconv.AppendUint(data, c.epoch, 10)
	data = append(data, `,"processed":`...)
	data = strconv.AppendInt(data, processed, 10)
	data = append(data, `,"window":`...)
	data = strconv.AppendInt(data, c.window, 10)
	data = append(data, '}')
	if err := c.nc.Publish(in.subject, data); err != nil && c.onError != nil {
		c.onError(err)
	}
}
