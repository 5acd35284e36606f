/**
 * A spec's encoding made once and written field by field (`specBytes`),
 * the stored job around it, and the answers about a job around it, are
 * byte for byte what the codecs write for the same messages; a spec the
 * codec would convert goes to the codec.
 */
import test from 'ava';
import { encodedReply } from '../../src/coordinator/reply-encoding.js';
import { CEILING_LIMITS } from '../../src/core/limits.js';
import { isNormalisedSpec, validateJobSpec } from '../../src/core/validate.js';
import type { GetJobResponse } from '../../src/gen/ckpt/v1/GetJobResponse.js';
import type { JobInfo__Output } from '../../src/gen/ckpt/v1/JobInfo.js';
import type { JobSpec } from '../../src/gen/ckpt/v1/JobSpec.js';
import type { StoredJob } from '../../src/gen/ckpt/v1/StoredJob.js';
import type { SubmitJobResponse } from '../../src/gen/ckpt/v1/SubmitJobResponse.js';
import { codec } from '../../src/proto/index.js';
import { specProblem } from '../../src/store/job-checks.js';
import { specBytes, storedJobBytes } from '../../src/store/spec-encoding.js';

const specs = codec<JobSpec, unknown>('JobSpec');

const odd: JobSpec = {
  jobId: 'odd',
  tasks: [
    { taskId: 'é', inputs: ['x', 'ü'.repeat(100)], labels: { k: 'v'.repeat(300), ß: '' } },
    { taskId: 'x', inputs: [], labels: {} },
    { taskId: '' },
  ],
  labels: { team: 'ops' },
};

function chain(tasks: number): JobSpec {
  return {
    jobId: 'chain',
    tasks: Array.from({ length: tasks }, (_, i): NonNullable<JobSpec['tasks']>[number] => ({
      taskId: `t${String(i).padStart(5, '0')}`,
      inputs: i === 0 ? [] : [`t${String(i - 1).padStart(5, '0')}`],
      labels: i % 7 === 0 ? { op: `map-${i}` } : {},
    })),
    policy: { intervalMs: 1000, retained: 3 },
    labels: { owner: 'scale' },
  };
}

test('a spec written field by field is the codec encoding, byte for byte', (t) => {
  for (const spec of [odd, chain(3000), validateJobSpec(chain(500)), { jobId: 'bare', tasks: [] }]) {
    t.deepEqual(Buffer.from(specBytes(spec)), Buffer.from(specs.encode(spec)), spec.jobId ?? '');
  }
});

test('a spec the codec would convert (a number for an id, a field it does not know) goes to the codec', (t) => {
  const converted = { jobId: 'j', tasks: [{ taskId: 7 as unknown as string, inputs: ['a'] }] };
  t.deepEqual(Buffer.from(specBytes(converted)), Buffer.from(specs.encode(converted)));
  const extra = { jobId: 'j', tasks: [{ taskId: 'a', colour: 'red' }] } as unknown as JobSpec;
  t.deepEqual(Buffer.from(specBytes(extra)), Buffer.from(specs.encode(extra)));
});

test('a stored job around the spec encoding is the codec encoding, and decodes to the same spec', (t) => {
  const stored = codec<StoredJob, { spec: unknown }>('StoredJob');
  const spec = validateJobSpec(chain(200));
  const bytes = storedJobBytes(spec, 'JOB_STATE_CANCELED', 1_700_000_000_000);
  const expected = stored.encode({ spec, state: 'JOB_STATE_CANCELED', createdAtMs: 1_700_000_000_000 });
  t.deepEqual(Buffer.from(bytes), Buffer.from(expected));
  t.deepEqual(stored.decode(bytes).spec, spec, 'a normalised spec has the shape a read decodes');
});

test('answers about a job ({ job }, { job, created }) are encoded around the spec encoding', (t) => {
  const spec = validateJobSpec(chain(1000));
  const job: JobInfo__Output = {
    spec,
    state: 'JOB_STATE_RUNNING',
    epoch: 4,
    latestCheckpointId: 17,
    checkpointing: 'JOB_CHECKPOINTING_CHECKPOINTED',
    attachedTasks: 1000,
    createdAtMs: 1_700_000_000_000,
    readyTasks: 1000,
    attempt: 'JOB_ATTEMPT_RUNNING',
    restorePoint: { checkpointId: 12, epoch: 3 },
    quarantineReason: '',
    intervalMs: 1000,
    intervalReason: 'fixed by policy',
  };
  const got = codec<GetJobResponse, unknown>('GetJobResponse');
  t.deepEqual(encodedReply({ job }), Buffer.from(got.encode({ job })));
  const submitted = codec<SubmitJobResponse, unknown>('SubmitJobResponse');
  for (const created of [true, false]) {
    t.deepEqual(encodedReply({ job, created }), Buffer.from(submitted.encode({ job, created })));
  }
  t.is(encodedReply({ job, other: 1 }), undefined, 'a reply of other fields is left to the serializer');
  t.is(encodedReply({ checkpoint: { checkpointId: 1 } }), undefined);
});

test('a spec validateJobSpec returned within the ceilings is known normalised; the store does not check it again', (t) => {
  const within = validateJobSpec(chain(10));
  t.true(isNormalisedSpec(within));
  t.is(specProblem(within), undefined);
  const beyond = validateJobSpec(chain(10), { ...CEILING_LIMITS, maxTasksPerJob: CEILING_LIMITS.maxTasksPerJob + 1 });
  t.false(isNormalisedSpec(beyond));
  t.false(isNormalisedSpec({ ...within }), 'a copy is checked as any other spec');
  t.is(
    specProblem({ ...within, tasks: [...within.tasks].reverse() }),
    'holds a spec that differs from its normalised form',
  );
});

test('tasks given sorted or not normalise alike', (t) => {
  const sorted = chain(50);
  const shuffled = { ...sorted, tasks: [...(sorted.tasks ?? [])].reverse() };
  t.deepEqual(validateJobSpec(shuffled), validateJobSpec(sorted));
});
