package ckpt

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// KeyGroups is the number of key groups keyed records are hashed into; a
// group belongs to one downstream task (see PartitionIndex).
const KeyGroups = 32768

const (
	fnvOffsetBasis uint32 = 0x811c9dc5
	fnvPrime       uint32 = 0x01000193
)

// Fnv1a32 is the 32-bit FNV-1a hash of the UTF-8 bytes of text.
func Fnv1a32(text string) uint32 {
	hash := fnvOffsetBasis
	for i := 0; i < len(text); i++ {
		hash ^= uint32(text[i])
		hash *= fnvPrime
	}
	return hash
}

// PartitionIndex is the index, among n downstream tasks sorted by id, of
// the task a record with this key goes to: the owner of the key's key
// group, the same in every language of ckpt.
func PartitionIndex(key string, n int) int {
	if n <= 0 {
		return 0
	}
	hash := Fnv1a32(key)
	if n > KeyGroups {
		return int(uint64(hash) % uint64(n))
	}
	group := uint64(hash % KeyGroups)
	return int(group * uint64(n) / KeyGroups)
}

// EncodeKey percent-encodes a key as JavaScript's encodeURIComponent
// does, for the ckpt-key header. Invalid UTF-8 bytes are encoded as U+FFFD.
func EncodeKey(key string) string {
	var b strings.Builder
	for _, r := range key {
		if r < 0x80 && unreservedKeyByte(byte(r)) {
			b.WriteByte(byte(r))
			continue
		}
		for _, c := range []byte(string(r)) {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func unreservedKeyByte(c byte) bool {
	switch {
	case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-_.!~*'()", c) >= 0
}

// DecodeKey reverses EncodeKey; a value that is not a valid encoding is
// returned as it is, as the TypeScript SDK does.
func DecodeKey(raw string) string {
	if strings.IndexByte(raw, '%') < 0 {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		if raw[i] != '%' {
			out = append(out, raw[i])
			continue
		}
		if i+2 >= len(raw) || !isHex(raw[i+1]) || !isHex(raw[i+2]) {
			return raw
		}
		out = append(out, unhex(raw[i+1])<<4|unhex(raw[i+2]))
		i += 2
	}
	if !utf8.Valid(out) {
		return raw
	}
	return string(out)
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// router picks the downstream tasks of an emitted record.
type router struct {
	taskID  string
	targets []string
	index   map[string]bool
}

func newRouter(taskID string, downstream []string) *router {
	seen := map[string]bool{}
	var targets []string
	for _, t := range downstream {
		if !seen[t] {
			seen[t] = true
			targets = append(targets, t)
		}
	}
	sort.Strings(targets)
	return &router{taskID: taskID, targets: targets, index: seen}
}

func (r *router) route(opt EmitOption) ([]string, error) {
	if opt.To != "" {
		if !r.index[opt.To] {
			return nil, fmt.Errorf("MALFORMED: task %s does not read from task %s", opt.To, r.taskID)
		}
		return []string{opt.To}, nil
	}
	if opt.HasKey && len(r.targets) > 0 {
		return []string{r.targets[PartitionIndex(opt.Key, len(r.targets))]}, nil
	}
	return r.targets, nil
}
