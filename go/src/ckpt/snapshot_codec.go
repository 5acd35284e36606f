package ckpt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"ckpt/ckptpb"
)

// mapState is the runtime's KeyedState: a map, safe for concurrent use.
type mapState struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func newMapState() *mapState { return &mapState{m: map[string][]byte{}} }

func (s *mapState) Get(key string) ([]byte, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.m[key]
	return v, ok
}

func (s *mapState) Set(key string, value []byte) {
	v := append([]byte(nil), value...)
	s.mu.Lock()
	s.m[key] = v
	s.mu.Unlock()
}

func (s *mapState) Delete(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

func (s *mapState) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.m)
}

func (s *mapState) Range(f func(key string, value []byte) bool) {
	s.mu.RLock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	s.mu.RUnlock()
	for _, k := range keys {
		v, ok := s.Get(k)
		if ok && !f(k, v) {
			return
		}
	}
}

// Keyed state snapshot encoding (big-endian): "CKS1", u32 entry count,
// then per entry, sorted by key: u32 key length, the key, u32 value
// length, the value. An empty state is stored as no bytes at all.
var keyedMagic = []byte("CKS1")

func encodeKeyedState(s *mapState) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(s.m))
	size := 8
	for k, v := range s.m {
		keys = append(keys, k)
		size += 8 + len(k) + len(v)
	}
	sort.Strings(keys)
	out := make([]byte, 0, size)
	out = append(out, keyedMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(keys)))
	for _, k := range keys {
		v := s.m[k]
		out = binary.BigEndian.AppendUint32(out, uint32(len(k)))
		out = append(out, k...)
		out = binary.BigEndian.AppendUint32(out, uint32(len(v)))
		out = append(out, v...)
	}
	return out
}

func decodeKeyedState(b []byte) (*mapState, error) {
	s := newMapState()
	if len(b) == 0 {
		return s, nil
	}
	r := &byteReader{b: b}
	if string(r.bytes(4)) != string(keyedMagic) {
		return nil, errors.New("MALFORMED: keyed state snapshot has a wrong header")
	}
	n := r.u32()
	for i := uint32(0); i < n && r.err == nil; i++ {
		k := string(r.bytes(int(r.u32())))
		v := r.bytes(int(r.u32()))
		s.m[k] = append([]byte(nil), v...)
	}
	if r.err == nil && r.at != len(b) {
		r.err = errors.New("it has trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("MALFORMED: keyed state snapshot is malformed: %v", r.err)
	}
	return s, nil
}

// inFlightRecord is a record in flight when a task snapshotted unaligned.
type inFlightRecord struct {
	from   string
	key    string
	hasKey bool
	value  []byte
}

// The unaligned snapshot envelope, as the TypeScript SDK writes it
// (big-endian): "CKU1", u32 state length, the state, u32 record count,
// then per record: u16 input length, the input, u32 key length or
// 0xFFFFFFFF for none, the key, u32 value length, the value.
var unalignedMagic = []byte("CKU1")

const noKey = 0xffffffff

func encodeUnaligned(state []byte, records []inFlightRecord) []byte {
	out := append([]byte(nil), unalignedMagic...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(state)))
	out = append(out, state...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(records)))
	for _, r := range records {
		out = binary.BigEndian.AppendUint16(out, uint16(len(r.from)))
		out = append(out, r.from...)
		if r.hasKey {
			out = binary.BigEndian.AppendUint32(out, uint32(len(r.key)))
			out = append(out, r.key...)
		} else {
			out = binary.BigEndian.AppendUint32(out, noKey)
		}
		out = binary.BigEndian.AppendUint32(out, uint32(len(r.value)))
		out = append(out, r.value...)
	}
	return out
}

// hasUnalignedHeader: b starts with the header encodeUnaligned writes. A
// piece of keyed state never does (it starts with "CKS1"); a task's own
// snapshot bytes might.
func hasUnalignedHeader(b []byte) bool {
	return len(b) >= len(unalignedMagic) && string(b[:len(unalignedMagic)]) == string(unalignedMagic)
}

// restoreHow is what unmarkedHoldsInFlight needs to know of a restore.
type restoreHow struct {
	// jobID is the restoring job; sourceJobID the job of the savepoint the
	// restored checkpoint maps ("": a checkpoint of jobID itself).
	jobID, sourceJobID string
	// unaligned: the job's mode is UNALIGNED and the task has inputs.
	unaligned bool
	// keyed: the task's state is its KeyedState (it does not implement Restorer).
	keyed bool
}

// unmarkedHoldsInFlight tells whether a piece whose handle does not say
// in_flight_records holds in-flight records all the same: stored before
// handles said so (proto/PROTOCOL.md §12). Such a piece holds them exactly
// when a task with inputs of an UNALIGNED job stored it (every writer
// stored each of those snapshots with its in-flight records, and no
// other); pieces stored since then say so. The handle cannot tell an old
// piece from a new plain one, so this answers true only where that is
// certain, in a task with inputs of an UNALIGNED job:
//
//   - keyed state: when the piece starts with the header of in-flight
//     records, which a piece of keyed state never does;
//   - a task's own snapshot: when the restore is of one of the job's own
//     checkpoints (no savepoint) and the piece is the job's. The task stored
//     it in this job, which has been UNALIGNED since it was created (a job's
//     spec never changes). A savepoint may come from a job of another mode
//     (an ALIGNED job's pieces hold plain state): its unmarked pieces are plain.
func unmarkedHoldsInFlight(h *ckptpb.StateHandle, data []byte, how restoreHow) bool {
	if !how.unaligned || h.GetInFlightRecords() {
		return false
	}
	if how.keyed {
		return hasUnalignedHeader(data)
	}
	owner, ok := pieceOwner(h.GetUri())
	return how.sourceJobID == "" && ok && owner == how.jobID
}

// pieceOwner is the job a piece's uri names by its last three path segments
// (".../<job>/<task>/<name>", as every backend names pieces); false for a
// uri shaped otherwise. A hint, not a check: reading checks the owner.
func pieceOwner(uri string) (string, bool) {
	segments := strings.Split(uri, "/")
	if len(segments) < 3 {
		return "", false
	}
	job, task := segments[len(segments)-3], segments[len(segments)-2]
	if !idPattern.MatchString(job) || !idPattern.MatchString(task) {
		return "", false
	}
	return job, true
}

func decodeUnaligned(b []byte) ([]byte, []inFlightRecord, error) {
	r := &byteReader{b: b}
	if string(r.bytes(4)) != string(unalignedMagic) {
		return nil, nil, errors.New("MALFORMED: unaligned snapshot is malformed: it has a wrong header")
	}
	state := r.bytes(int(r.u32()))
	var records []inFlightRecord
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		rec := inFlightRecord{from: string(r.bytes(int(r.u16())))}
		if kl := r.u32(); kl != noKey {
			rec.key, rec.hasKey = string(r.bytes(int(kl))), true
		}
		rec.value = append([]byte(nil), r.bytes(int(r.u32()))...)
		if !utf8.ValidString(rec.from) || !utf8.ValidString(rec.key) {
			r.err = errors.New("a name is not UTF-8")
		}
		records = append(records, rec)
	}
	if r.err == nil && r.at != len(b) {
		r.err = errors.New("it has trailing bytes")
	}
	if r.err != nil {
		return nil, nil, fmt.Errorf("MALFORMED: unaligned snapshot is malformed: %v", r.err)
	}
	return append([]byte(nil), state...), records, nil
}

type byteReader struct {
	b   []byte
	at  int
	err error
}

func (r *byteReader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n < 0 || r.at+n > len(r.b) {
		r.err = errors.New("it is truncated")
		return false
	}
	return true
}

func (r *byteReader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.at : r.at+n]
	r.at += n
	return v
}

func (r *byteReader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.at:])
	r.at += 2
	return v
}

func (r *byteReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.at:])
	r.at += 4
	return v
}
