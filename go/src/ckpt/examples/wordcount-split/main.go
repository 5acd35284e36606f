// Command wordcount-split runs split tasks of the word count job
// (examples/wordcount/job.ts) with the Go worker library: task split-<i>
// reads the subject sentences.<i> of the stream SENTENCES and emits each
// word of a sentence keyed by the word, so that the count tasks (in any
// language) receive the words they own. It runs the job's sink too (the
// exactly-once JetStream sink writing wordcount.out of the stream
// WORDCOUNT), which the count tasks' updates may reach across languages.
// The flags are those of examples/wordcount/worker.ts; each also has an
// environment variable.
//
//	wordcount-split --coordinator 127.0.0.1:7070 --nats nats://127.0.0.1:4222 \
//	  --job wordcount --tasks split-0,split-1 --state-dir /tmp/wc
//
// It exits 0 when the job is canceled or on SIGTERM/SIGINT (after a
// graceful stop), 1 when the worker fails, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"ckpt"

	nats "github.com/nats-io/nats.go"
)

// The word count's input and output (examples/wordcount/job.ts).
const (
	inputStream   = "SENTENCES"
	outputStream  = "WORDCOUNT"
	outputSubject = "wordcount.out"
)

func inputSubject(partition int) string { return "sentences." + strconv.Itoa(partition) }

// splitTask reads the sentences of one input subject and emits each word, keyed by the word.
func splitTask(partition int) ckpt.Source {
	return ckpt.JetStreamSource(ckpt.JetStreamSourceOptions{
		Stream:  inputStream,
		Subject: inputSubject(partition),
		Map: func(m *nats.Msg, _ ckpt.Context) ([]ckpt.Emission, error) {
			ws := words(m.Data)
			out := make([]ckpt.Emission, len(ws))
			for i, w := range ws {
				out[i] = ckpt.Emission{Value: []byte(w), Route: ckpt.ByKey(w)}
			}
			return out, nil
		},
	})
}

// sinkTask makes the counts visible in the output stream, exactly once.
func sinkTask() ckpt.Task {
	return ckpt.JetStreamSink(ckpt.JetStreamSinkOptions{Stream: outputStream, Subject: outputSubject, CreateStream: true})
}

// taskFor is the task of a task id: split-<i> or sink.
func taskFor(taskID string) (interface{}, error) {
	if taskID == "sink" {
		return sinkTask(), nil
	}
	partition, err := partitionOf(taskID)
	if err != nil {
		return nil, err
	}
	return splitTask(partition), nil
}

// partitionOf is the i of a task id split-<i>.
func partitionOf(taskID string) (int, error) {
	digits := strings.TrimPrefix(taskID, "split-")
	i, err := strconv.Atoi(digits)
	if digits == taskID || err != nil || i < 0 || strconv.Itoa(i) != digits {
		return 0, fmt.Errorf("this worker runs the word count's split tasks (split-<i>) and its sink, not %q: the count tasks run in TypeScript workers", taskID)
	}
	return i, nil
}

// config is what the flags and the environment give.
type config struct {
	coordinators, natsURL, job, tasks, stateDir, state, workerID string
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("wordcount-split", flag.ContinueOnError)
	env := os.Getenv
	fs.StringVar(&c.coordinators, "coordinator", env("CKPT_COORDINATORS"), "coordinator addresses host:port, comma-separated (CKPT_COORDINATORS)")
	fs.StringVar(&c.natsURL, "nats", env("CKPT_NATS_URL"), "NATS URL (CKPT_NATS_URL)")
	job := env("CKPT_JOB")
	if job == "" {
		job = "wordcount"
	}
	fs.StringVar(&c.job, "job", job, "job id (CKPT_JOB)")
	fs.StringVar(&c.tasks, "tasks", env("CKPT_WORDCOUNT_TASKS"), "tasks to run, comma-separated: split-<i> and sink (CKPT_WORDCOUNT_TASKS)")
	fs.StringVar(&c.stateDir, "state-dir", "", "directory for snapshots (or --state)")
	fs.StringVar(&c.state, "state", env("CKPT_STATE"), "where snapshots go: file:///<dir> or nats-obj://<bucket> (CKPT_STATE)")
	fs.StringVar(&c.workerID, "worker-id", env("CKPT_WORKER_ID"), "worker id (CKPT_WORKER_ID)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.stateDir != "" {
		abs, err := filepath.Abs(c.stateDir)
		if err != nil {
			return c, err
		}
		c.state = "file://" + abs
	}
	if c.coordinators == "" || c.natsURL == "" || c.tasks == "" || c.state == "" {
		return c, errors.New("usage: wordcount-split --coordinator ADDR[,ADDR] --nats URL --tasks split-0[,split-1,sink] --state-dir DIR [--job ID] [--worker-id ID]")
	}
	return c, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	logger := log.New(os.Stderr, "wordcount-split ", log.LstdFlags|log.Lmicroseconds)
	c, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		logger.Print(err)
		return 2
	}
	w, err := ckpt.NewWorker(ckpt.Options{
		Coordinators: strings.Split(c.coordinators, ","),
		NATSURL:      c.natsURL,
		JobID:        c.job,
		WorkerID:     c.workerID,
		StateURI:     c.state,
		Logger:       logger,
	})
	if err != nil {
		logger.Print(err)
		return 2
	}
	for _, id := range strings.Split(c.tasks, ",") {
		id = strings.TrimSpace(id)
		task, err := taskFor(id)
		if err == nil {
			err = w.AddTask(id, task)
		}
		if err != nil {
			logger.Print(err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := w.Run(ctx); err != nil {
		logger.Printf("the worker failed: %v", err)
		return 1
	}
	return 0
}
