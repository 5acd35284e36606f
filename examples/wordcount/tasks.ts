/**
 * The word count's tasks, written against the worker SDK. None of them
 * sees a barrier, an epoch or a snapshot: the SDK checkpoints the count's
 * keyed state and the sources' stream positions, and the sink makes its
 * output visible only when a checkpoint completes.
 */
import { jetStreamSink, jetStreamSource, type AnyTask, type KeyedState, type Task } from '../../src/index.js';
import { DEFAULT_JOB_ID, wordCountIo, type WordCountIo } from './job.js';
import { words } from './corpus.js';

/** The reference job's streams. */
const DEFAULT_IO = wordCountIo(DEFAULT_JOB_ID);

/** Reads sentences of one input subject and emits each word, keyed by the word. */
export function splitTask(partition: number, io: WordCountIo = DEFAULT_IO): AnyTask {
  return jetStreamSource({
    stream: io.inputStream,
    subject: io.inputSubject(partition),
    map: (message) => words(message.string()).map((word) => ({ value: word, key: word })),
  });
}

/** Counts words in keyed state and emits "word total" after each one. */
export function countTask(): Task {
  return {
    process(record, ctx) {
      const word = record.text();
      const state = ctx.state as KeyedState<number>;
      const total = (state.get(word) ?? 0) + 1;
      state.set(word, total);
      ctx.emit(`${word} ${total}`, { to: 'sink' });
    },
  };
}

/** Makes the counts visible in the output stream, exactly once. */
export function sinkTask(io: WordCountIo = DEFAULT_IO): Task {
  return jetStreamSink({ stream: io.outputStream, subject: io.outputSubject, createStream: true });
}

/** The task of a task id, reading and writing `io` (default: the reference job's streams). */
export function taskFor(taskId: string, io: WordCountIo = DEFAULT_IO): AnyTask {
  const [kind, partition] = taskId.split('-');
  if (kind === 'split') return splitTask(Number(partition), io);
  if (kind === 'count') return countTask();
  if (taskId === 'sink') return sinkTask(io);
  throw new Error(`the word count has no task ${taskId}`);
}
