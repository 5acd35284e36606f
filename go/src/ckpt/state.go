package ckpt

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"ckpt/ckptpb"

	nats "github.com/nats-io/nats.go"
)

// Where snapshots are stored. A piece is named by its job, task,
// checkpoint and epoch, as the TypeScript SDK names them:
//   file://<dir>/<job>/<task>/<checkpoint>-<epoch>.snap
//   nats-obj://<bucket>/<job>/<task>/<checkpoint>-<epoch>
// and its handle carries its size and SHA-256 checksum, checked on every read.

var (
	idPattern        = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	pieceNamePattern = regexp.MustCompile(`^(0|[1-9][0-9]*)-(0|[1-9][0-9]*)$`)
	tempNamePattern  = regexp.MustCompile(`^(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\.snap\.[0-9a-f]{12}\.tmp$`)
	bucketPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	checksumPattern  = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
)

const snapFileExtension = ".snap"

// pieceKey names a snapshot piece.
type pieceKey struct {
	jobID, taskID       string
	checkpointID, epoch uint64
}

func (k pieceKey) name() string { return fmt.Sprintf("%d-%d", k.checkpointID, k.epoch) }

// storedPiece is one piece found in a backend's own storage.
type storedPiece struct {
	uri        string
	modifiedAt time.Time
}

// stateBackend stores and fetches snapshot pieces.
type stateBackend interface {
	put(key pieceKey, data []byte) (*ckptpb.StateHandle, error)
	// get reads and verifies the piece a handle names; owners are the
	// job ids whose pieces may be read.
	get(h *ckptpb.StateHandle, owners ...string) ([]byte, error)
	// discard deletes the pieces among uris that lie in its storage and
	// belong to jobID; list names the job's pieces, after deleting its
	// temporary files older than staleAfter (0: none). Backends whose
	// pieces the coordinator deletes itself return nothing.
	discard(jobID string, uris []string) (deleted int, err error)
	list(jobID string, staleAfter time.Duration) ([]storedPiece, error)
}

// Checksum is the checksum of bytes as a StateHandle carries it: "sha256:" and 64 hex digits.
func Checksum(data []byte) string {
	sum := sha256.Sum256(data)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newHandle(uri string, data []byte) *ckptpb.StateHandle {
	return &ckptpb.StateHandle{
		Uri:          uri,
		SizeBytes:    uint64(len(data)),
		Checksum:     Checksum(data),
		Compression:  ckptpb.StateCompression_STATE_COMPRESSION_NONE,
		RawSizeBytes: uint64(len(data)),
	}
}

// checkHandle refuses a handle this worker cannot read before anything is fetched.
func checkHandle(h *ckptpb.StateHandle) error {
	if len(h.GetShared()) > 0 {
		return fmt.Errorf("MALFORMED: state handle %s shares pieces of earlier checkpoints (an incremental snapshot), which the Go worker does not read", h.Uri)
	}
	switch h.Compression {
	case ckptpb.StateCompression_STATE_COMPRESSION_UNSPECIFIED, ckptpb.StateCompression_STATE_COMPRESSION_NONE:
	default:
		return fmt.Errorf("MALFORMED: state handle %s is compressed with %s, which the Go worker does not read; set the job's policy.compression to STATE_COMPRESSION_NONE", h.Uri, h.Compression)
	}
	if !checksumPattern.MatchString(h.Checksum) {
		return fmt.Errorf("MALFORMED: state handle %s has no valid checksum (%q)", h.Uri, h.Checksum)
	}
	if h.RawSizeBytes != 0 && h.RawSizeBytes != h.SizeBytes {
		return fmt.Errorf("MALFORMED: state handle %s is uncompressed but its raw size %d differs from its size %d", h.Uri, h.RawSizeBytes, h.SizeBytes)
	}
	return nil
}

// verifyPiece checks bytes read against their handle.
func verifyPiece(h *ckptpb.StateHandle, data []byte) error {
	if uint64(len(data)) != h.SizeBytes {
		return fmt.Errorf("CORRUPT: snapshot %s has %d bytes, its handle says %d", h.Uri, len(data), h.SizeBytes)
	}
	if got := Checksum(data); got != h.Checksum {
		return fmt.Errorf("CORRUPT: snapshot %s has checksum %s, its handle says %s", h.Uri, got, h.Checksum)
	}
	return nil
}

// locateSegments checks "<job>/<task>/<name><suffix>" and its owner.
func locateSegments(uri string, segments []string, suffix string, owners []string) (pieceKey, error) {
	if len(segments) != 3 || !idPattern.MatchString(segments[0]) || !idPattern.MatchString(segments[1]) ||
		!strings.HasSuffix(segments[2], suffix) || !pieceNamePattern.MatchString(strings.TrimSuffix(segments[2], suffix)) {
		return pieceKey{}, fmt.Errorf("MALFORMED: state handle %s is not a snapshot of this backend", uri)
	}
	k := pieceKey{jobID: segments[0], taskID: segments[1]}
	fmt.Sscanf(strings.TrimSuffix(segments[2], suffix), "%d-%d", &k.checkpointID, &k.epoch)
	for _, o := range owners {
		if o != "" && o == k.jobID {
			return k, nil
		}
	}
	return pieceKey{}, fmt.Errorf("MALFORMED: state handle %s is a snapshot of job %s, not of job %s", uri, k.jobID, owners[0])
}

// newStateBackend opens the backend a state URI names.
func newStateBackend(stateURI string, nc *nats.Conn) (stateBackend, error) {
	switch {
	case strings.HasPrefix(stateURI, "file://"):
		u, err := url.Parse(stateURI)
		if err != nil || u.Host != "" || !filepath.IsAbs(u.Path) {
			return nil, fmt.Errorf("MALFORMED: state %q must be file:///<absolute directory>", stateURI)
		}
		return newLocalDirectory(u.Path)
	case strings.HasPrefix(stateURI, "nats-obj://"):
		bucket := strings.TrimSuffix(strings.TrimPrefix(stateURI, "nats-obj://"), "/")
		if !bucketPattern.MatchString(bucket) {
			return nil, fmt.Errorf("MALFORMED: state %q must be nats-obj://<bucket> with a bucket of [A-Za-z0-9_-]", stateURI)
		}
		return newObjectStore(nc, bucket)
	}
	return nil, fmt.Errorf("MALFORMED: state %q must be file:///<dir> or nats-obj://<bucket>", stateURI)
}

// localDirectory keeps pieces as files under one directory.
type localDirectory struct {
	dir string
}

func newLocalDirectory(dir string) (*localDirectory, error) {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: create state directory %s: %v", dir, err)
	}
	return &localDirectory{dir: dir}, nil
}

func fileURI(path string) string { return (&url.URL{Scheme: "file", Path: path}).String() }

func (d *localDirectory) put(key pieceKey, data []byte) (*ckptpb.StateHandle, error) {
	if !idPattern.MatchString(key.jobID) || !idPattern.MatchString(key.taskID) {
		return nil, fmt.Errorf("MALFORMED: job %q or task %q is not an id", key.jobID, key.taskID)
	}
	taskDir := filepath.Join(d.dir, key.jobID, key.taskID)
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: create directory %s: %v", taskDir, err)
	}
	path := filepath.Join(taskDir, key.name()+snapFileExtension)
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := fmt.Sprintf("%s.%s.tmp", path, hex.EncodeToString(rnd[:]))
	if err := writeSynced(tmp, data); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("UNAVAILABLE: write snapshot %s: %v", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("UNAVAILABLE: rename snapshot %s: %v", path, err)
	}
	if dir, err := os.Open(taskDir); err == nil {
		_ = dir.Sync()
		dir.Close()
	}
	return newHandle(fileURI(path), data), nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// locate maps a file uri to its path inside the directory, checking its owner.
func (d *localDirectory) locate(uri string, owners []string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" || u.Host != "" {
		return "", fmt.Errorf("MALFORMED: state handle %s is not a local file uri", uri)
	}
	path := filepath.Clean(u.Path)
	rel, err := filepath.Rel(d.dir, path)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") || filepath.IsAbs(rel) {
		return "", fmt.Errorf("MALFORMED: state handle %s is not a snapshot of this backend (%s)", uri, d.dir)
	}
	if _, err := locateSegments(uri, strings.Split(rel, string(filepath.Separator)), snapFileExtension, owners); err != nil {
		return "", err
	}
	if fileURI(path) != uri {
		return "", fmt.Errorf("MALFORMED: state handle %s is not spelled as this backend writes it", uri)
	}
	return path, nil
}

func (d *localDirectory) get(h *ckptpb.StateHandle, owners ...string) ([]byte, error) {
	if err := checkHandle(h); err != nil {
		return nil, err
	}
	path, err := d.locate(h.Uri, owners)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err == nil {
		root, rerr := filepath.EvalSymlinks(d.dir)
		if rerr == nil && !strings.HasPrefix(real, root+string(filepath.Separator)) {
			return nil, fmt.Errorf("MALFORMED: state handle %s leads out of %s", h.Uri, d.dir)
		}
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("NOT_FOUND: snapshot %s does not exist", h.Uri)
	} else if err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: read snapshot %s: %v", h.Uri, err)
	}
	if err := verifyPiece(h, data); err != nil {
		return nil, err
	}
	return data, nil
}

func (d *localDirectory) discard(jobID string, uris []string) (int, error) {
	deleted := 0
	var firstErr error
	for _, uri := range uris {
		path, err := d.locate(uri, []string{jobID})
		if err != nil {
			continue // not a piece of this job in this directory: not ours to delete
		}
		if err := os.Remove(path); err == nil {
			deleted++
		} else if !errors.Is(err, os.ErrNotExist) && firstErr == nil {
			firstErr = err
		}
	}
	return deleted, firstErr
}

func (d *localDirectory) list(jobID string, staleAfter time.Duration) ([]storedPiece, error) {
	if !idPattern.MatchString(jobID) {
		return nil, fmt.Errorf("MALFORMED: job %q is not an id", jobID)
	}
	jobDir := filepath.Join(d.dir, jobID)
	tasks, err := os.ReadDir(jobDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var pieces []storedPiece
	before := time.Now().Add(-staleAfter)
	for _, t := range tasks {
		if !t.IsDir() || !idPattern.MatchString(t.Name()) {
			continue
		}
		taskDir := filepath.Join(jobDir, t.Name())
		files, err := os.ReadDir(taskDir)
		if err != nil {
			continue
		}
		for _, f := range files {
			info, err := f.Info()
			if err != nil || !info.Mode().IsRegular() {
				continue
			}
			path := filepath.Join(taskDir, f.Name())
			if tempNamePattern.MatchString(f.Name()) {
				if staleAfter > 0 && info.ModTime().Before(before) {
					_ = os.Remove(path)
				}
				continue
			}
			if !strings.HasSuffix(f.Name(), snapFileExtension) || !pieceNamePattern.MatchString(strings.TrimSuffix(f.Name(), snapFileExtension)) {
				continue
			}
			pieces = append(pieces, storedPiece{uri: fileURI(path), modifiedAt: info.ModTime()})
		}
	}
	return pieces, nil
}

// objectStore keeps pieces in a JetStream Object Store bucket.
type objectStore struct {
	js     nats.JetStreamContext
	bucket string
	mu     sync.Mutex
	stores map[string]nats.ObjectStore
}

func newObjectStore(nc *nats.Conn, bucket string) (*objectStore, error) {
	js, err := nc.JetStream()
	if err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: JetStream: %v", err)
	}
	o := &objectStore{js: js, bucket: bucket, stores: map[string]nats.ObjectStore{}}
	store, err := js.CreateObjectStore(&nats.ObjectStoreConfig{Bucket: bucket, Storage: nats.FileStorage})
	if err != nil {
		store, err = js.ObjectStore(bucket)
		if err != nil {
			return nil, fmt.Errorf("UNAVAILABLE: open object store bucket %s: %v", bucket, err)
		}
	}
	o.stores[bucket] = store
	return o, nil
}

func (o *objectStore) store(bucket string) (nats.ObjectStore, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if s := o.stores[bucket]; s != nil {
		return s, nil
	}
	s, err := o.js.ObjectStore(bucket)
	if err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: open object store bucket %s: %v", bucket, err)
	}
	o.stores[bucket] = s
	return s, nil
}

func (o *objectStore) put(key pieceKey, data []byte) (*ckptpb.StateHandle, error) {
	name := fmt.Sprintf("%s/%s/%s", key.jobID, key.taskID, key.name())
	store, err := o.store(o.bucket)
	if err != nil {
		return nil, err
	}
	if _, err := store.PutBytes(name, data); err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: put object %s in bucket %s: %v", name, o.bucket, err)
	}
	return newHandle(fmt.Sprintf("nats-obj://%s/%s", o.bucket, name), data), nil
}

func (o *objectStore) get(h *ckptpb.StateHandle, owners ...string) ([]byte, error) {
	if err := checkHandle(h); err != nil {
		return nil, err
	}
	rest := strings.TrimPrefix(h.Uri, "nats-obj://")
	if rest == h.Uri {
		return nil, fmt.Errorf("MALFORMED: state handle %s is not a nats-obj:// uri", h.Uri)
	}
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 || !bucketPattern.MatchString(rest[:slash]) {
		return nil, fmt.Errorf("MALFORMED: state handle %s names no valid bucket", h.Uri)
	}
	bucket, name := rest[:slash], rest[slash+1:]
	if _, err := locateSegments(h.Uri, strings.Split(name, "/"), "", owners); err != nil {
		return nil, err
	}
	store, err := o.store(bucket)
	if err != nil {
		return nil, err
	}
	data, err := store.GetBytes(name)
	if errors.Is(err, nats.ErrObjectNotFound) {
		return nil, fmt.Errorf("NOT_FOUND: snapshot %s does not exist", h.Uri)
	} else if err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: get snapshot %s: %v", h.Uri, err)
	}
	if err := verifyPiece(h, data); err != nil {
		return nil, err
	}
	return data, nil
}

// The coordinator deletes object store pieces itself.
func (o *objectStore) discard(string, []string) (int, error)             { return 0, nil }
func (o *objectStore) list(string, time.Duration) ([]storedPiece, error) { return nil, nil }
