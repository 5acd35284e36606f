package ckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// sinkStaging holds the staged records of an exactly-once sink: the records
// of the checkpoint interval in progress, and per checkpoint k the records
// sealed by its snapshot ("pending(k)"), waiting for a checkpoint ≥ k to
// complete. It is the sink's snapshot. Safe for concurrent use: the task
// stages and seals while completed groups are published in the background.
//
// Encoding (the TypeScript SDK's "CKS2", so a snapshot restores in either
// language): the magic "CKS2"; a u16 length and the UTF-8 id of the job that
// took the snapshot; a u32 group count; then per group, in ascending order,
// the checkpoint id as u64, a u32 record count and per record a u32 length
// and its bytes. All integers are big-endian. "CKS1" (no job id) is read too.
// The job id names the records' message ids when a job started from another
// job's savepoint publishes them again, so that the stream drops what that
// job published already.
type sinkStaging struct {
	mu      sync.Mutex
	current [][]byte
	pending map[uint64][][]byte
	// encoded caches each pending group's encoding: a pending group is in
	// every snapshot until it is published.
	encoded map[uint64][]byte
	// origin is the job that took the decoded snapshot ("" for a fresh
	// staging or a CKS1 snapshot).
	origin string
}

var (
	sinkMagicV1 = []byte("CKS1")
	sinkMagicV2 = []byte("CKS2")
)

// errMalformedSinkSnapshot is wrapped by every decoding error.
var errMalformedSinkSnapshot = errors.New("malformed sink snapshot")

func newSinkStaging() *sinkStaging {
	return &sinkStaging{pending: map[uint64][][]byte{}, encoded: map[uint64][]byte{}}
}

// stage adds one record (kept as given: the caller passes its own copy).
func (s *sinkStaging) stage(record []byte) {
	s.mu.Lock()
	s.current = append(s.current, record)
	s.mu.Unlock()
}

// seal makes the records staged so far pending(checkpointID).
func (s *sinkStaging) seal(checkpointID uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.current) == 0 {
		return
	}
	s.pending[checkpointID] = append(s.pending[checkpointID], s.current...)
	delete(s.encoded, checkpointID)
	s.current = nil
}

// pendingIDs are the checkpoint ids with pending records, ascending.
func (s *sinkStaging) pendingIDs() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sortedIDs()
}

func (s *sinkStaging) sortedIDs() []uint64 {
	ids := make([]uint64, 0, len(s.pending))
	for k := range s.pending {
		ids = append(ids, k)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// stagingGroup is the records of one checkpoint.
type stagingGroup struct {
	checkpointID uint64
	records      [][]byte
}

// committable lists the pending groups of checkpoints ≤ checkpointID, ascending.
func (s *sinkStaging) committable(checkpointID uint64) []stagingGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []stagingGroup
	for _, k := range s.sortedIDs() {
		if k <= checkpointID {
			out = append(out, stagingGroup{checkpointID: k, records: s.pending[k]})
		}
	}
	return out
}

// drop forgets pending(checkpointID): it is published.
func (s *sinkStaging) drop(checkpointID uint64) {
	s.mu.Lock()
	delete(s.pending, checkpointID)
	delete(s.encoded, checkpointID)
	s.mu.Unlock()
}

// encode is the pending groups as the snapshot of job jobID; records not
// sealed yet are not part of it. Nothing pending encodes as no bytes.
func (s *sinkStaging) encode(jobID string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) == 0 {
		return nil, nil
	}
	if len(jobID) > 0xffff {
		return nil, fmt.Errorf("sink snapshot: job id of %d bytes is too long", len(jobID))
	}
	ids := s.sortedIDs()
	groups := make([][]byte, len(ids))
	size := 10 + len(jobID)
	for i, k := range ids {
		g, err := s.groupBytes(k)
		if err != nil {
			return nil, err
		}
		groups[i] = g
		size += len(g)
	}
	out := make([]byte, 0, size)
	out = append(out, sinkMagicV2...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(jobID)))
	out = append(out, jobID...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(groups)))
	for _, g := range groups {
		out = append(out, g...)
	}
	return out, nil
}

// groupBytes is one group's encoding; s.mu held.
func (s *sinkStaging) groupBytes(k uint64) ([]byte, error) {
	if known, ok := s.encoded[k]; ok {
		return known, nil
	}
	records := s.pending[k]
	if uint64(len(records)) > 0xffffffff {
		return nil, fmt.Errorf("sink snapshot: checkpoint %d has too many records", k)
	}
	size := 12
	for _, r := range records {
		if uint64(len(r)) > 0xffffffff {
			return nil, fmt.Errorf("sink snapshot: a record of %d bytes is too long", len(r))
		}
		size += 4 + len(r)
	}
	out := make([]byte, 0, size)
	out = binary.BigEndian.AppendUint64(out, k)
	out = binary.BigEndian.AppendUint32(out, uint32(len(records)))
	for _, r := range records {
		out = binary.BigEndian.AppendUint32(out, uint32(len(r)))
		out = append(out, r...)
	}
	s.encoded[k] = out
	return out, nil
}

// decodeSinkStaging decodes what encode wrote; an error wraps errMalformedSinkSnapshot.
func decodeSinkStaging(b []byte) (*sinkStaging, error) {
	d := stagingDecoder{b: b}
	magic := d.take(4)
	s := newSinkStaging()
	switch {
	case d.err != nil:
	case string(magic) == string(sinkMagicV2):
		s.origin = string(d.take(int(d.u16())))
	case string(magic) != string(sinkMagicV1):
		return nil, fmt.Errorf("%w: wrong header", errMalformedSinkSnapshot)
	}
	for groups := d.u32(); groups > 0 && d.err == nil; groups-- {
		k := d.u64()
		n := d.u32()
		var records [][]byte
		for ; n > 0 && d.err == nil; n-- {
			r := d.take(int(d.u32()))
			records = append(records, append([]byte(nil), r...))
		}
		s.pending[k] = append(s.pending[k], records...)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.at != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", errMalformedSinkSnapshot, len(b)-d.at)
	}
	return s, nil
}

// stagingDecoder reads big-endian fields, remembering the first overrun.
type stagingDecoder struct {
	b   []byte
	at  int
	err error
}

func (d *stagingDecoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b)-d.at {
		d.err = fmt.Errorf("%w: truncated at byte %d", errMalformedSinkSnapshot, d.at)
		return nil
	}
	out := d.b[d.at : d.at+n]
	d.at += n
	return out
}

func (d *stagingDecoder) u16() uint16 {
	if b := d.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (d *stagingDecoder) u32() uint32 {
	if b := d.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (d *stagingDecoder) u64() uint64 {
	if b := d.take(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}
