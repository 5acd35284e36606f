/**
 * The word count's streams per job: the reference job keeps its stream
 * names, every other job gets streams and subjects of its own that no
 * other job's stream filter matches.
 */
import test from 'ava';
import {
  INPUT_STREAM,
  OUTPUT_STREAM,
  OUTPUT_SUBJECT,
  inputSubject,
  wordCountIo,
} from '../../examples/wordcount/job.js';

/** Whether NATS subject `subject` matches `filter` (tokens, `*` one token, `>` the rest). */
function matches(filter: string, subject: string): boolean {
  const f = filter.split('.');
  const s = subject.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return s.length > i;
    if (i >= s.length || (f[i] !== '*' && f[i] !== s[i])) return false;
  }
  return f.length === s.length;
}

test('the reference job reads SENTENCES and writes WORDCOUNT, as always', (t) => {
  const io = wordCountIo('wordcount');
  t.is(io.inputStream, INPUT_STREAM);
  t.is(io.outputStream, OUTPUT_STREAM);
  t.is(io.outputSubject, OUTPUT_SUBJECT);
  t.is(io.inputSubject(1), inputSubject(1));
  t.true(matches(io.inputFilter, io.inputSubject(0)));
});

test('other jobs have streams of their own, disjoint from every other job', (t) => {
  const ios = ['wordcount', 'wordcount-2', 'wordcount-3', 'team_a-x'].map(wordCountIo);
  const names = ios.flatMap((io) => [io.inputStream, io.outputStream]);
  t.is(new Set(names).size, names.length);
  for (const name of names) t.regex(name, /^[A-Za-z0-9_-]+$/, 'a valid stream name');
  for (const [i, io] of ios.entries()) {
    for (const [j, other] of ios.entries()) {
      for (const subject of [io.inputSubject(0), io.inputSubject(1), io.outputSubject]) {
        t.is(
          matches(other.inputFilter, subject),
          i === j && subject !== io.outputSubject,
          `${other.inputFilter} vs ${subject}`,
        );
        t.is(matches(other.outputSubject, subject), i === j && subject === io.outputSubject);
      }
    }
  }
});
