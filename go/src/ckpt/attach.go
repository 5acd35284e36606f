package ckpt

import (
	"context"
	"fmt"
	"os"
	"time"

	"ckpt/ckptpb"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// One Attach stream of the worker's session: the hello and its welcome,
// then heartbeats, results and commands until the stream ends.

type attachment struct {
	stream  ckptpb.Coordinator_AttachClient
	welcome *ckptpb.Welcome
	cancel  context.CancelFunc
	first   chan recvResult
}

type recvResult struct {
	msg *ckptpb.AttachResponse
	err error
}

// attach opens a stream at the current address, sends the hello and waits for the welcome.
func (w *Worker) attach(ctx context.Context, helloEpoch uint64) (*attachment, error) {
	c, err := w.conn(w.address())
	if err != nil {
		return nil, err
	}
	// The stream outlives ctx for a moment: a graceful stop still sends what is batched.
	sctx, cancel := context.WithCancel(context.Background())
	if w.opts.Token != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+w.opts.Token)
	}
	stream, err := ckptpb.NewCoordinatorClient(c).Attach(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	labels := map[string]string{"sdk": "ckpt-go", "language": "go"}
	if host, err := os.Hostname(); err == nil {
		labels["host"] = host
	}
	for k, v := range w.opts.Labels {
		labels[k] = v
	}
	hello := &ckptpb.WorkerHello{WorkerId: w.opts.WorkerID, JobId: w.opts.JobID, TaskIds: w.order, Labels: labels, Epoch: helloEpoch}
	if err := stream.Send(&ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Hello{Hello: hello}}); err != nil {
		_, rerr := stream.Recv()
		cancel()
		if rerr != nil {
			return nil, withTrailer(rerr, stream)
		}
		return nil, err
	}
	first := make(chan recvResult, 1)
	go func() {
		m, err := stream.Recv()
		first <- recvResult{m, err}
	}()
	select {
	case r := <-first:
		if r.err != nil {
			cancel()
			return nil, withTrailer(r.err, stream)
		}
		welcome := r.msg.GetWelcome()
		if welcome == nil {
			cancel()
			return nil, fmt.Errorf("MALFORMED: expected a welcome, got %T", r.msg.Body)
		}
		return &attachment{stream: stream, welcome: welcome, cancel: cancel}, nil
	case <-time.After(w.opts.AttachTimeout):
		cancel()
		return nil, status.Errorf(codes.Unavailable, "no welcome within %s", w.opts.AttachTimeout)
	case <-ctx.Done():
		cancel()
		return nil, ctx.Err()
	}
}

// serve runs a welcomed stream: heartbeats, results, commands. It returns
// when the stream ends, the job is canceled or ctx ends (after a graceful stop).
func (w *Worker) serve(ctx context.Context, att *attachment, rt *runtime) error {
	stream := att.stream
	w.session.bind(stream)
	defer w.session.unbind(stream)
	interval := time.Duration(att.welcome.HeartbeatIntervalMs) * time.Millisecond
	if interval <= 0 {
		interval = time.Second
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				hb := &ckptpb.Heartbeat{SentAtMs: uint64(time.Now().UnixMilli()), Tasks: rt.taskHealth()}
				w.session.write(stream, &ckptpb.AttachRequest{Body: &ckptpb.AttachRequest_Heartbeat{Heartbeat: hb}})
			}
		}
	}()
	msgs := make(chan recvResult, 64)
	go func() {
		for {
			m, err := stream.Recv()
			if err == nil {
				if res := m.GetResult(); res != nil {
					w.session.deliver(res)
					continue
				}
			}
			select {
			case msgs <- recvResult{m, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			w.logf("stopping: sending what is pending")
			rt.close()
			w.endSession(stream, msgs)
			return ctx.Err()
		case <-rt.canceled:
			rt.close()
			w.endSession(stream, msgs)
			return nil
		case r := <-msgs:
			if r.err != nil {
				return withTrailer(r.err, stream)
			}
			w.handle(r.msg, rt)
		}
	}
}

// endSession closes the worker's side of the stream and waits a moment
// for the coordinator to close its side, so that it sees a clean end.
func (w *Worker) endSession(stream ckptpb.Coordinator_AttachClient, msgs <-chan recvResult) {
	_ = w.session.closeSend(stream)
	timeout := time.After(3 * time.Second)
	for {
		select {
		case r := <-msgs:
			if r.err != nil {
				return
			}
		case <-timeout:
			return
		}
	}
}

func (w *Worker) handle(m *ckptpb.AttachResponse, rt *runtime) {
	var term uint64
	switch b := m.Body.(type) {
	case *ckptpb.AttachResponse_Result:
		w.session.deliver(b.Result)
		return
	case *ckptpb.AttachResponse_Welcome:
		return
	case *ckptpb.AttachResponse_Restore:
		term = b.Restore.Term
	case *ckptpb.AttachResponse_Start:
		term = b.Start.Term
	case *ckptpb.AttachResponse_Discard:
		term = b.Discard.Term
	case *ckptpb.AttachResponse_ListState:
		term = b.ListState.Term
	case *ckptpb.AttachResponse_Canceled:
		// At once, not behind a restore in progress.
		rt.markCanceled(b.Canceled.JobId)
		return
	default:
		return
	}
	if term < w.term {
		w.logf("command of deposed term %d dropped (term %d seen)", term, w.term)
		return
	}
	w.term = term
	rt.command(m)
}
