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
	subject string
	epoch   uint64
	sent    uint64
	used    bool
}

// dataPlane publishes records and barriers on one connection, so that
// those of one edge keep their order, and counts the records of each edge.
type dataPlane struct {
	nc     *nats.Conn
	prefix string
	mu     sync.Mutex
	out    map[[2]string]*outEdge
	onErr  func(error)
}

func newDataPlane(nc *nats.Conn, prefix string, onErr func(error)) *dataPlane {
	return &dataPlane{nc: nc, prefix: prefix, out: map[[2]string]*outEdge{}, onErr: onErr}
}

func (p *dataPlane) edge(from, to string) *outEdge {
	k := [2]string{from, to}
	e := p.out[k]
	if e == nil {
		e = &outEdge{subject: EdgeSubject(p.prefix, from, to)}
		p.out[k] = e
	}
	return e
}

func (p *dataPlane) publishRecord(from, to string, value []byte, epoch uint64, key string, hasKey bool) {
	h := nats.Header{EpochHeader: []string{strconv.FormatUint(epoch, 10)}}
	if hasKey {
		h[KeyHeader] = []string{EncodeKey(key)}
	}
	p.mu.Lock()
	e := p.edge(from, to)
	if !e.used || epoch > e.epoch {
		e.used, e.epoch, e.sent = true, epoch, 0
	}
	if epoch == e.epoch {
		e.sent++
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
