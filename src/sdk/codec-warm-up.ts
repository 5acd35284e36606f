/**
 * Work a worker process does on its way to ready whose result is the same in
 * every process, for a worker built into a V8 startup snapshot
 * (`node --build-snapshot`): the protobuf root of ckpt.v1, and the encoders
 * and decoders protobufjs generates for a message type on its first use,
 * for every message type a session and the barrier plane exchange, and
 * encoded and decoded once, for a sample of the messages of a session's
 * start (hello, welcome with the job spec, restore with state handles,
 * ready, start, heartbeat) and of the barrier plane. Call it while the
 * snapshot is built; processes started from the snapshot find it done.
 * Only computation: nothing connects, nothing is scheduled.
 */
import type { AttachRequest } from '../gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse } from '../gen/ckpt/v1/AttachResponse.js';
import type { JobSpec } from '../gen/ckpt/v1/JobSpec.js';
import { codec, prepareCodecs } from '../proto/index.js';

/** A small spec, for a welcome sample when the worker names none. */
const SAMPLE_SPEC: JobSpec = {
  jobId: 'job',
  tasks: [{ taskId: 'split-0' }, { taskId: 'count-0', inputs: ['split-0'] }],
  policy: { intervalMs: 1000 },
};

/** Encodes and decodes a sample of every message a restart exchanges; `spec`: the job's, for the welcome's sample. */
export function warmUpCodecs(spec: JobSpec = SAMPLE_SPEC): void {
  const requests = codec<AttachRequest, unknown>('AttachRequest');
  const responses = codec<AttachResponse, unknown>('AttachResponse');
  const handle = { uri: 'file:///state/count-0/1', sizeBytes: 10, checksum: 'sha256:00', shared: [{ uri: 'x' }] };
  const snapshot = { taskId: 'count-0', state: handle, positions: [{ input: 'sentences.0', offset: 1 }] };
  const samples: { requests: AttachRequest[]; responses: AttachResponse[] } = {
    requests: [
      { hello: { jobId: 'job', workerId: 'w', taskIds: ['split-0', 'count-0'], labels: { a: 'b' }, epoch: 1 } },
      { heartbeat: { sentAtMs: 1, tasks: [{ taskId: 'count-0', busyMs: 1 }] } },
      { ready: { epoch: 2, taskIds: ['count-0'] } },
    ],
    responses: [
      { welcome: { sessionId: 's', epoch: 2, term: 1, spec } },
      { restore: { jobId: 'job', epoch: 2, checkpointId: 3, snapshots: [snapshot], term: 1, nextCheckpointId: 4 } },
      { start: { jobId: 'job', epoch: 2, term: 1 } },
    ],
  };
  // Every type a session's messages and the barrier plane's hold, also those the samples leave out.
  prepareCodecs(['AttachRequest', 'AttachResponse', ...Object.keys(CONTROL_SAMPLES)]);
  for (const message of samples.requests) requests.decode(requests.encode(message));
  for (const message of samples.responses) responses.decode(responses.encode(message));
  for (const [name, message] of Object.entries(CONTROL_SAMPLES)) {
    const control = codec<object, unknown>(name);
    control.decode(control.encode(message));
  }
}

/** A sample of each message of the barrier plane (bus.proto). */
const CONTROL_SAMPLES: Record<string, object> = {
  Trigger: { jobId: 'job', epoch: 2, checkpointId: 4, term: 1 },
  Barrier: { jobId: 'job', epoch: 2, checkpointId: 4 },
  CheckpointComplete: { jobId: 'job', epoch: 2, checkpointId: 4, term: 1 },
  CheckpointAbort: { jobId: 'job', epoch: 2, checkpointId: 4, term: 1 },
  Recover: { jobId: 'job', epoch: 3, checkpointId: 4, term: 1 },
};
