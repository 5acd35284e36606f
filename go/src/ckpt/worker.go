package ckpt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	nats "github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
)

// Options configure a Worker.
type Options struct {
	// Coordinators are the host:port addresses of the coordinators; the
	// worker finds and follows the leader among them.
	Coordinators []string
	// NATSURL is the NATS server to connect to, unless NATS is given.
	NATSURL string
	// NATS is a connection to use instead of NATSURL; the worker does not
	// close it, and sets its disconnect and error handlers.
	NATS *nats.Conn
	// JobID is the job whose tasks the worker runs.
	JobID string
	// WorkerID names the worker in the coordinator's logs; default host:pid:random.
	WorkerID string
	// StateURI is where snapshots go: "file:///<dir>" or "nats-obj://<bucket>".
	StateURI string
	// TLS to the coordinators: a CA file to verify them, and a client
	// certificate and key for mutual TLS. Without any of them, plaintext.
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// TLSServerName overrides the name checked in the coordinators' certificates.
	TLSServerName string
	// FollowUnlistedLeader lets the worker follow a leader named by a
	// standby that is not among Coordinators (with TLS, the certificate
	// check still applies).
	FollowUnlistedLeader bool
	// Token is sent as "authorization: Bearer <token>" on every call.
	Token string
	// Labels are sent in the hello (SDK, language and host are added).
	Labels map[string]string
	// Logger or Logf receive the worker's log lines; default stderr.
	Logger *log.Logger
	Logf   func(format string, args ...interface{})
	// MaxAckBytes bounds one acknowledgement message (estimated); at most
	// and by default DefaultMaxAckBytes.
	MaxAckBytes int
	// AckBatch is how long the results of a checkpoint wait for the
	// worker's other tasks before they are sent; default 5 ms.
	AckBatch time.Duration
	// AbandonCallAfter is how long a restore waits for a call of the task's
	// code from the previous epoch to return before it goes on; default 10 s.
	AbandonCallAfter time.Duration
	// AttachTimeout bounds the wait for a welcome; default 10 s.
	AttachTimeout time.Duration
	// FlowControlWindow is how many records of an input edge a task takes
	// beyond those it has processed, which it tells the edge's writer in
	// credits (proto/PROTOCOL.md §7.5); 0: DefaultFlowControlWindow;
	// negative: no credits are sent. As a writer, a task always honours
	// the credits its readers send, whatever this option says.
	FlowControlWindow int
}

// Worker runs tasks of one job for the coordinator.
type Worker struct {
	opts    Options
	tasks   map[string]interface{}
	order   []string
	logf    func(string, ...interface{})
	nc      *nats.Conn
	backend stateBackend
	session *session

	addrs []string
	idx   int
	conns map[string]*grpc.ClientConn
	term  uint64

	rtMu sync.Mutex
	rt   *runtime
}

// NewWorker checks the options. Nothing connects before Run.
func NewWorker(opts Options) (*Worker, error) {
	var addrs []string
	seen := map[string]bool{}
	for _, a := range opts.Coordinators {
		for _, p := range strings.Split(a, ",") {
			if p = strings.TrimSpace(p); p != "" && !seen[p] {
				seen[p] = true
				addrs = append(addrs, p)
			}
		}
	}
	if len(addrs) == 0 {
		return nil, errors.New("MALFORMED: Coordinators: at least one coordinator address (host:port) is required")
	}
	if !idPattern.MatchString(opts.JobID) {
		return nil, fmt.Errorf("MALFORMED: JobID %q must be 1-128 characters of [A-Za-z0-9_-]", opts.JobID)
	}
	if opts.NATS == nil && opts.NATSURL == "" {
		return nil, errors.New("MALFORMED: NATSURL or NATS is required")
	}
	if opts.StateURI == "" {
		return nil, errors.New("MALFORMED: StateURI is required (file:///<dir> or nats-obj://<bucket>)")
	}
	if opts.WorkerID == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		opts.WorkerID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	if !printableID(opts.WorkerID, 256) {
		return nil, fmt.Errorf("MALFORMED: WorkerID %q must be 1-256 bytes of printable ASCII without spaces", opts.WorkerID)
	}
	if opts.MaxAckBytes <= 0 {
		opts.MaxAckBytes = DefaultMaxAckBytes
	}
	if opts.AckBatch <= 0 {
		opts.AckBatch = 5 * time.Millisecond
	}
	if opts.AbandonCallAfter <= 0 {
		opts.AbandonCallAfter = 10 * time.Second
	}
	if opts.AttachTimeout <= 0 {
		opts.AttachTimeout = 10 * time.Second
	}
	w := &Worker{opts: opts, tasks: map[string]interface{}{}, addrs: addrs, conns: map[string]*grpc.ClientConn{}}
	switch {
	case opts.Logf != nil:
		w.logf = opts.Logf
	case opts.Logger != nil:
		w.logf = opts.Logger.Printf
	default:
		w.logf = log.New(os.Stderr, "", log.LstdFlags|log.Lmicroseconds).Printf
	}
	w.session = newSession()
	return w, nil
}

func printableID(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// AddTask registers a task: a Task, or a Source for a task without inputs.
func (w *Worker) AddTask(id string, t interface{}) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("MALFORMED: task id %q must be 1-128 characters of [A-Za-z0-9_-]", id)
	}
	_, isTask := t.(Task)
	_, isSource := t.(Source)
	if !isTask && !isSource {
		return fmt.Errorf("MALFORMED: task %s implements neither Task nor Source", id)
	}
	if _, dup := w.tasks[id]; dup {
		return fmt.Errorf("MALFORMED: task %s added twice", id)
	}
	w.tasks[id] = t
	w.order = append(w.order, id)
	sort.Strings(w.order)
	return nil
}

// Run attaches to the coordinator and runs the tasks until the job is
// canceled or ctx ends (both return nil), or the coordinator refuses the
// worker for good (an error).
func (w *Worker) Run(ctx context.Context) error {
	if len(w.order) == 0 {
		return errors.New("MALFORMED: no tasks added")
	}
	if err := w.connectNATS(); err != nil {
		return err
	}
	defer func() {
		if w.opts.NATS == nil && w.nc != nil {
			w.nc.Close()
		}
		for _, c := range w.conns {
			c.Close()
		}
	}()
	backend, err := newStateBackend(w.opts.StateURI, w.nc)
	if err != nil {
		return err
	}
	w.backend = backend
	var rt *runtime
	defer func() {
		if rt != nil {
			rt.close()
		}
	}()
	attempt := 0
	for {
		if ctx.Err() != nil {
			return nil
		}
		helloEpoch := uint64(0)
		if rt != nil {
			helloEpoch = rt.runningEpoch()
		}
		att, err := w.attach(ctx, helloEpoch)
		if err == nil && att.welcome.Term < w.term {
			att.cancel()
			err = fmt.Errorf("NOT_LEADER: welcome of term %d from a deposed leader (term %d seen)", att.welcome.Term, w.term)
			w.next()
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			info := errorInfoOf(err, nil)
			if fatalReason(info.reason) {
				if info.reason == "JOB_CANCELED" {
					w.logf("job %s is canceled", w.opts.JobID)
					return nil
				}
				return fmt.Errorf("the coordinator refused the worker: %v", err)
			}
			w.logf("attach to %s failed (%v); retrying", w.address(), err)
			if w.follow(info) {
				attempt = 0
			}
			if !sleepCtx(ctx, backoff(attempt)) {
				return nil
			}
			attempt++
			continue
		}
		w.term = att.welcome.Term
		if rt == nil {
			rt, err = newRuntime(w, att.welcome)
			if err != nil {
				att.cancel()
				return err
			}
			w.rtMu.Lock()
			w.rt = rt
			w.rtMu.Unlock()
			w.logf("attached to %s: job %s, epoch %d, term %d, tasks %v", w.address(), w.opts.JobID, att.welcome.Epoch, att.welcome.Term, w.order)
		} else {
			rt.onResumed(att.welcome)
			w.logf("session resumed at %s: epoch %d, term %d", w.address(), att.welcome.Epoch, att.welcome.Term)
		}
		attempt = 0
		err = w.serve(ctx, att, rt)
		select {
		case <-rt.canceled:
			att.cancel()
			return nil
		default:
		}
		if ctx.Err() != nil {
			return nil
		}
		info := errorInfoOf(err, att.stream)
		att.cancel()
		if fatalReason(info.reason) {
			if info.reason == "JOB_CANCELED" {
				return nil
			}
			return fmt.Errorf("the coordinator ended the session: %v", err)
		}
		w.follow(info)
		w.logf("session lost (%v); reconnecting", err)
		if !sleepCtx(ctx, backoff(0)) {
			return nil
		}
	}
}

func (w *Worker) connectNATS() error {
	onLost := func(what string) {
		w.rtMu.Lock()
		rt := w.rt
		w.rtMu.Unlock()
		if rt != nil {
			rt.connectionLost(what)
		}
	}
	disconnected := func(nc *nats.Conn, err error) {
		onLost(fmt.Sprintf("the NATS connection to %s dropped", nc.ConnectedUrlRedacted()))
	}
	errHandler := func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
			onLost(fmt.Sprintf("NATS dropped messages of %s (slow consumer)", sub.Subject))
		}
	}
	if w.opts.NATS != nil {
		w.nc = w.opts.NATS
		w.nc.SetDisconnectErrHandler(disconnected)
		w.nc.SetErrorHandler(errHandler)
		return nil
	}
	nc, err := nats.Connect(w.opts.NATSURL, nats.Name("ckpt-go-worker "+w.opts.WorkerID), nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(disconnected), nats.ErrorHandler(errHandler))
	if err != nil {
		return fmt.Errorf("UNAVAILABLE: connect to NATS at %s: %v", w.opts.NATSURL, err)
	}
	w.nc = nc
	return nil
}

func (w *Worker) address() string { return w.addrs[w.idx] }

func (w *Worker) next() { w.idx = (w.idx + 1) % len(w.addrs) }

// follow moves to the leader a standby named, or to the next address;
// true when it moved to a named leader (worth trying at once).
func (w *Worker) follow(info errorInfo) bool {
	if info.code != codes.Unavailable && info.code != codes.Unknown && info.code != codes.DeadlineExceeded {
		return false
	}
	switch {
	case info.reason == "NOT_LEADER" && info.leader != "":
		for i, a := range w.addrs {
			if a == info.leader {
				w.idx = i
				return true
			}
		}
		if w.opts.FollowUnlistedLeader {
			w.addrs = append(w.addrs, info.leader)
			w.idx = len(w.addrs) - 1
			return true
		}
		w.logf("%s names %s as the leader, which is not among the coordinator addresses given (%s); trying the next one",
			w.address(), info.leader, strings.Join(w.addrs, ","))
		w.next()
	case info.reason == "TAKING_OVER":
		// The same coordinator, once it has taken over.
	case info.reason == "" || info.reason == "NOT_LEADER" || info.reason == "SHUTTING_DOWN" || info.code == codes.DeadlineExceeded:
		w.next()
	}
	return false
}

func (w *Worker) conn(addr string) (*grpc.ClientConn, error) {
	if c := w.conns[addr]; c != nil {
		return c, nil
	}
	var dial []grpc.DialOption
	if w.opts.TLSCAFile != "" || w.opts.TLSCertFile != "" {
		cfg := &tls.Config{ServerName: w.opts.TLSServerName, MinVersion: tls.VersionTLS12}
		if w.opts.TLSCAFile != "" {
			pem, err := os.ReadFile(w.opts.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("MALFORMED: TLS CA file: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("MALFORMED: TLS CA file %s holds no certificate", w.opts.TLSCAFile)
			}
			cfg.RootCAs = pool
		}
		if w.opts.TLSCertFile != "" {
			cert, err := tls.LoadX509KeyPair(w.opts.TLSCertFile, w.opts.TLSKeyFile)
			if err != nil {
				return nil, fmt.Errorf("MALFORMED: TLS client certificate: %v", err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		dial = append(dial, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	} else {
		dial = append(dial, grpc.WithInsecure())
	}
	// Restores of many tasks can carry large manifests: accept what the coordinator may send (64 MiB by default).
	dial = append(dial, grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))
	dial = append(dial, coordinatorDialOptions()...)
	c, err := grpc.Dial(addr, dial...)
	if err != nil {
		return nil, fmt.Errorf("UNAVAILABLE: dial %s: %v", addr, err)
	}
	w.conns[addr] = c
	return c, nil
}

// Keepalive and connection set-up of the coordinator connections (proto/PROTOCOL.md §10, a silent coordinator).
const (
	// KeepaliveTime is the time from an answered HTTP/2 ping to the next: 1 s, as the TypeScript SDK, but grpc-go
	// raises anything below 10 s to 10 s.
	KeepaliveTime = 10 * time.Second
	// KeepaliveTimeout is how long a ping may go unanswered before the connection, and the session on it, is dropped.
	KeepaliveTimeout = 4 * time.Second
	// ConnectTimeout bounds the set-up of a connection: a paused coordinator's kernel accepts it but nothing answers.
	ConnectTimeout = 4 * time.Second
)

// coordinatorDialOptions pings the coordinator (also without calls in flight) so that a session on a paused or
// cut-off leader ends; gives a connection ConnectTimeout to be set up; and connects again to an address that refused
// after 100 ms growing to 1 s rather than grpc-go's 1 s growing to 120 s, so that a coordinator that was down and
// leads again is found at once.
func coordinatorDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                KeepaliveTime,
			Timeout:             KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcbackoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: ConnectTimeout,
		}),
	}
}
