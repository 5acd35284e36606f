import test from 'ava';
import { BarrierAligner } from '../sim/alignment.js';
import { simulatedSnapshot, workerTopology } from '../sim/index.js';
import { CkptError } from '../../src/core/errors.js';

const spec = {
  jobId: 'job',
  tasks: [
    { taskId: 'a', inputs: [] },
    { taskId: 'b', inputs: [] },
    { taskId: 'm', inputs: ['a', 'b', 'a'] },
    { taskId: 'n', inputs: ['a'] },
  ],
};

test('a simulated snapshot is deterministic and names its job, task and checkpoint', (t) => {
  const input = { jobId: 'job', taskId: 'a', checkpointId: 3, stateBytes: 2048, source: true, alignmentMs: 0 };
  const s = simulatedSnapshot(input);
  t.deepEqual(simulatedSnapshot(input), s);
  t.is(s.state?.uri, 'sim://job/a/3');
  t.is(s.state?.sizeBytes, 2048);
  t.regex(s.state?.checksum ?? '', /^sha256:[0-9a-f]{64}$/);
  t.deepEqual(s.positions, [{ input: 'stream-a', offset: 300 }]);
  t.not(simulatedSnapshot({ ...input, checkpointId: 4 }).state?.checksum, s.state?.checksum);
  t.deepEqual(simulatedSnapshot({ ...input, source: false }).positions, []);
});

test('the topology splits sources from readers and indexes readers by input', (t) => {
  const topo = workerTopology(spec, ['a', 'm', 'n']);
  t.deepEqual(topo.sources, ['a']);
  t.deepEqual(topo.inputsByTask.get('m'), ['a', 'b']);
  t.deepEqual(topo.readersByInput.get('a'), ['m', 'n']);
  t.deepEqual(topo.readersByInput.get('b'), ['m']);
  t.deepEqual(topo.outputsByTask.get('a'), ['m', 'n'], 'a barrier goes once per downstream task');
  t.deepEqual(topo.outputsByTask.get('m'), []);
  t.false(topo.outputsByTask.has('b'), 'only local tasks forward barriers');
  t.deepEqual(workerTopology(spec, ['b']).outputsByTask.get('b'), ['m'], 'downstream tasks may be remote');
  t.throws(() => workerTopology(spec, ['x']), { instanceOf: CkptError, message: /MALFORMED/ });
  t.throws(() => workerTopology(spec, ['a', 'a']), { instanceOf: CkptError, message: /twice/ });
});

test('a task aligns when barrier n has arrived on every input, once', (t) => {
  const aligner = new BarrierAligner(workerTopology(spec, ['m', 'n']).inputsByTask);
  t.deepEqual(aligner.offer('m', 'a', 1, 100), { first: true, aligned: false, alignmentMs: 0 });
  t.is(aligner.offer('m', 'a', 1, 110), undefined, 'a repeated barrier is ignored');
  t.is(aligner.offer('m', 'x', 1, 110), undefined, 'an unknown input is ignored');
  t.deepEqual(aligner.offer('m', 'b', 1, 130), { first: false, aligned: true, alignmentMs: 30 });
  t.is(aligner.offer('m', 'b', 1, 140), undefined, 'an aligned checkpoint is done');
  t.deepEqual(aligner.offer('n', 'a', 1, 100), { first: true, aligned: true, alignmentMs: 0 });
});

test('aborted checkpoints and resets forget partial alignment', (t) => {
  const aligner = new BarrierAligner(workerTopology(spec, ['m']).inputsByTask);
  aligner.offer('m', 'a', 2, 0);
  aligner.discard(2);
  t.deepEqual(aligner.offer('m', 'b', 2, 5), { first: true, aligned: false, alignmentMs: 0 });
  aligner.reset();
  t.is(aligner.offer('m', 'b', 3, 5)?.aligned, false);
});
