/**
 * The word count's tasks, written against the worker SDK. None of them
 * sees a barrier, an epoch or a snapshot: the SDK checkpoints the count's
 * keyed state and the sources' stream positions, and the sink makes its
 * output visible only when a checkpoint completes.
 */
import { jetStreamSink, jetStreamSource, type AnyTask, type KeyedState, type Task } from '../../src/index.js';
import { INPUT_STREAM, OUTPUT_STREAM, OUTPUT_SUBJECT, inputSubject } from './job.js';
import { words } from './corpus.js';

/** Reads sentences of one input subject and emits each word, keyed by the word. */
export function splitTask(partition: number): AnyTask {
  return jetStreamSource({
    stream: INPUT_STREAM,
    subject: inputSubject(partition),
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
export function sinkTask(): Task {
  return jetStreamSink({ stream: OUTPUT_STREAM, subject: OUTPUT_SUBJECT, createStream: true });
}

/** The task of a task id. */
export function taskFor(taskId: string): AnyTask {
  const [kind, partition] = taskId.split('-');
  if (kind === 'split') return splitTask(Number(partition));
  if (kind === 'count') return countTask();
  if (taskId === 'sink') return sinkTask();
  throw new Error(`the word count has no task ${taskId}`);
}
