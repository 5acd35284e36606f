package ckpt

import (
	"strconv"
	"sync"

	"ckpt/ckptpb"

	"github.com/golang/protobuf/proto"
	nats "github.com/nats-io/nats.go"
)

// Headers of the data subjects (see proto/ckpt/v1/bus.proto).
const (
	EpochHeader   = "ckpt-epoch"
	BarrierHeader = "ckpt-barrier"
	KeyHeader     = "ckpt-key"
)

// EdgeSubject is the data subject of the edge from -> to under a job's control prefix.
func EdgeSubject(prefix, from, to string) string { return prefix + ".data." + from + "." + to }

type outEdge struct {
	subject  string
	producer *producerFlow
	epoch    uint64
	sent     uint64
	used     bool
	credit   edgeCredit
}

// dataPlane publishes records and barriers on one connection, so that
// those of one edge keep their order, counts the records of each edge,
// and keeps the writer's side of flow control (flow_writer.go).
type dataPlane struct {
	nc        *nats.Conn
	prefix    string
	mu        sync.Mutex
	out       map[[2]string]*outEdge
	producers map[string]*producerFlow
	// flowEpoch is the worker's epoch: credits of any other are dropped.
	flowEpoch uint64
	onErr     func(error)
	// onUnblocked: a producer that was over its window is no longer.
	onUnblocked func(from string)
	// onDrop: a message was dropped (its kind, why).
	onDrop func(kind, reason string)
}

func newDataPlane(nc *nats.Conn, prefix string, onErr func(error)) *dataPlane {
	return &dataPlane{nc: nc, prefix: prefix, out: map[[2]string]*outEdge{}, producers: map[string]*producerFlow{}, onErr: onErr}
}

// edge is the output edge from -> to; p.mu held. Only edges of the job
// graph are created: credits of any other are dropped.
func (p *dataPlane) edge(from, to string) *outEdge {
	k := [2]string{from, to}
	e := p.out[k]
	if e == nil {
		e = &outEdge{subject: EdgeSubject(p.prefix, from, to), producer: p.producer(from)}
		p.out[k] = e
	}
	return e
}

// registerOutputs creates the output edges of from, so that their credits are taken before the first record.
func (p *dataPlane) registerOutputs(from string, outputs []string) {
	p.mu.Lock()
	for _, to := range outputs {
		p.edge(from, to)
	}
	p.mu.Unlock()
}

func (p *dataPlane) publishRecord(from, to string, value []byte, epoch uint64, key string, hasKey bool) {
	h := nats.Header{EpochHeader: []string{strconv.FormatUint(epoch, 10)}}
	if hasKey {
		h[KeyHeader] = []string{EncodeKey(key)}
	}
	p.mu.Lock()
	e := p.edge(from, to)
	if !e.used || epoch > e.epoch {
		e.enterEpoch(epoch)
	}
	// A record of an older epoch is dropped by its reader, so it is not counted.
	if epoch == e.epoch {
		e.countSent()
	}
	// Published under the lock: a barrier's count must match what went before it.
	err := p.nc.PublishMsg(&nats.Msg{Subject: e.subject, Data: value, Header: h})
	p.mu.Unlock()
	if err != nil && p.onErr != nil {
		p.onErr(err)
	}
}

func (p *dataPlane) publishBarrier(from string, outputs []string, jobID string, checkpointID, epoch uint64, typ ckptpb.SnapshotType) {
	h := nats.Header{EpochHeader: []string{strconv.FormatUint(epoch, 10)}, BarrierHeader: []string{"1"}}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, to := range outputs {
		e := p.edge(from, to)
		records := uint64(0)
		if e.used && e.epoch == epoch {
			records = e.sent
		}
		data, _ := proto.Marshal(&ckptpb.Barrier{
			JobId: jobID, CheckpointId: checkpointID, Epoch: epoch,
			SnapshotType: typ, FromTaskId: from, Records: records,
		})
		if err := p.nc.PublishMsg(&nats.Msg{Subject: e.subject, Data: data, Header: h}); err != nil && p.onErr != nil {
			p.onErr(err)
		}
	}
}

// epochOf reads the ckpt-epoch header; ok is false when absent or not a number.
func epochOf(h nats.Header) (uint64, bool) {
	v := h.Get(EpochHeader)
	if v == "" || len(v) > 15 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil
}
