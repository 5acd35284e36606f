/**
 * Where the sources stand against their input: for each input subject,
 * the stream sequence of its last message beside the position the newest
 * committed checkpoint recorded for it. A run whose output is short says
 * with it whether the sources stopped reading (positions behind the
 * input's end) or records went missing after they were read.
 */
import type { IOptions } from 'etcd3';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { INPUT_SUBJECTS, wordCountIo } from '../../examples/wordcount/job.js';
import { createEtcdStore } from '../../src/store/index.js';

/** One input subject's end and recorded position. */
export interface InputProgress {
  subject: string;
  /** Stream sequence of the subject's last message; undefined when it could not be read. */
  lastSeq: number | undefined;
  /** The position the newest committed checkpoint recorded for it; undefined when none did. */
  committed: number | undefined;
}

/** Reads the inputs' ends and the newest committed positions; failures leave fields undefined. */
export async function inputProgress(
  nc: NatsConnection,
  etcd: {
    urls: readonly string[];
    security: Pick<IOptions, 'credentials' | 'auth'> | undefined;
    prefix: string;
    jobId: string;
  },
): Promise<{ checkpointId: number | undefined; inputs: InputProgress[] }> {
  const jsm = await jetstreamManager(nc);
  const store = createEtcdStore({
    hosts: [...etcd.urls],
    prefix: etcd.prefix,
    ...(etcd.security === undefined ? {} : { security: etcd.security }),
  });
  try {
    const summaries = await store.listSummaries(etcd.jobId).catch(() => []);
    const newest = Math.max(0, ...summaries.map((s) => s.checkpointId));
    const manifest = newest === 0 ? undefined : await store.readManifest(etcd.jobId, newest).catch(() => undefined);
    const recorded = new Map<string, number>();
    for (const task of manifest?.tasks ?? []) {
      for (const p of task.positions) recorded.set(p.input, Number(p.offset));
    }
    const inputs: InputProgress[] = [];
    const io = wordCountIo(etcd.jobId);
    for (const subject of INPUT_SUBJECTS.map((_, partition) => io.inputSubject(partition))) {
      const last = await jsm.streams.getMessage(io.inputStream, { last_by_subj: subject }).catch(() => null);
      inputs.push({ subject, lastSeq: last?.seq, committed: recorded.get(`${io.inputStream}/${subject}`) });
    }
    return { checkpointId: manifest?.checkpointId, inputs };
  } finally {
    await store.close();
  }
}

/** One line for the run's log. */
export function describeInputProgress(p: Awaited<ReturnType<typeof inputProgress>>): string {
  const inputs = p.inputs.map((i) => `${i.subject} last ${i.lastSeq ?? '?'}, read to ${i.committed ?? '?'}`);
  return `inputs against checkpoint ${p.checkpointId ?? '?'}: ${inputs.join('; ')}`;
}
