package ckpt

import (
	"context"
	"errors"
	"math/rand"
	"strings"
	"time"

	"ckpt/ckptpb"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// What a refusal of the coordinator says (its status, and the reason and
// leader in its trailing metadata), and how the worker retries.

type errorInfo struct {
	code    codes.Code
	reason  string
	leader  string
	message string
}

type trailerError struct {
	err     error
	trailer metadata.MD
}

func (e *trailerError) Error() string { return e.err.Error() }
func (e *trailerError) Unwrap() error { return e.err }

func withTrailer(err error, stream grpc.ClientStream) error {
	if err == nil {
		return nil
	}
	return &trailerError{err: err, trailer: stream.Trailer()}
}

func errorInfoOf(err error, _ grpc.ClientStream) errorInfo {
	if err == nil {
		return errorInfo{code: codes.Unavailable}
	}
	var md metadata.MD
	inner := err
	var te *trailerError
	if errors.As(err, &te) {
		md, inner = te.trailer, te.err
	}
	st, _ := status.FromError(inner)
	info := errorInfo{code: st.Code(), message: st.Message()}
	if v := md.Get("ckpt-reason"); len(v) > 0 {
		info.reason = v[0]
	} else if i := strings.Index(st.Message(), ":"); i > 0 && isReasonName(st.Message()[:i]) {
		info.reason = st.Message()[:i]
	}
	if v := md.Get("ckpt-leader"); len(v) > 0 {
		info.leader = v[0]
	}
	if info.reason == "" && info.code == codes.Unauthenticated {
		info.reason = "UNAUTHENTICATED"
	}
	return info
}

func isReasonName(s string) bool {
	if s == "TAKING_OVER" {
		return true
	}
	_, ok := ckptpb.ErrorReason_value["ERROR_REASON_"+s]
	return ok
}

func reasonName(r ckptpb.ErrorReason) string { return strings.TrimPrefix(r.String(), "ERROR_REASON_") }

// Refusals no reconnect can fix.
func fatalReason(reason string) bool {
	switch reason {
	case "MALFORMED", "OVERSIZED", "UNKNOWN_JOB", "UNKNOWN_TASK", "JOB_CANCELED", "UNAUTHENTICATED", "PERMISSION_DENIED":
		return true
	}
	return false
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < attempt && d < 2*time.Second; i++ {
		d *= 2
	}
	if d > 2*time.Second {
		d = 2 * time.Second
	}
	return d + time.Duration(rand.Int63n(int64(d)/5+1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
