/**
 * The coordinator's side of compressed state: the policy's compression and
 * the compression and raw size of acknowledged handles.
 */
import test from 'ava';
import { CkptError } from '../../src/core/errors.js';
import { resolvePolicy } from '../../src/core/policy.js';
import { DEFAULT_STATE_URI_SCHEMES, validateTaskSnapshot } from '../../src/core/snapshot-checks.js';
import { DEFAULT_STATE_COMPRESSION, resolveStateCompression } from '../../src/core/state-compression.js';
import type { StateHandle } from '../../src/gen/ckpt/v1/StateHandle.js';

const RULES = { maxStateBytes: 1_000_000, stateUriSchemes: new Set(DEFAULT_STATE_URI_SCHEMES) };
const CHECKSUM = `sha256:${'a'.repeat(64)}`;

function refusal(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof CkptError ? err.message : String(err);
  }
  return 'no error';
}

/** Validates a snapshot of task `t` with `state` and a state size of `stateSizeBytes`. */
function check(state: StateHandle, stateSizeBytes = 100): string {
  return refusal(() => validateTaskSnapshot({ taskId: 't', state, metrics: { stateSizeBytes } }, {}, RULES));
}

const handle = (fields: Partial<StateHandle>): StateHandle => ({
  uri: 'file:///s/t',
  sizeBytes: 100,
  checksum: CHECKSUM,
  ...fields,
});

test('a policy without compression takes the default; names and numbers are accepted, others refused', (t) => {
  t.is(resolvePolicy({}).compression, DEFAULT_STATE_COMPRESSION);
  t.is(resolvePolicy({ compression: 'STATE_COMPRESSION_UNSPECIFIED' }).compression, 'STATE_COMPRESSION_LZ4');
  t.is(resolvePolicy({ compression: 'STATE_COMPRESSION_BROTLI' }).compression, 'STATE_COMPRESSION_BROTLI');
  t.is(resolvePolicy({ compression: 1 }).compression, 'STATE_COMPRESSION_NONE');
  t.is(
    refusal(() => resolvePolicy({ compression: 9 as 3 })),
    'MALFORMED: policy.compression 9 is not a state compression',
  );
  t.is(
    refusal(() => resolvePolicy({ compression: 'ZSTD' as 'STATE_COMPRESSION_NONE' })),
    'MALFORMED: policy.compression "ZSTD" is not a state compression',
  );
});

test('resolveStateCompression reads names and numbers and refuses the rest naming the field', (t) => {
  t.is(resolveStateCompression(undefined, 'f'), 'STATE_COMPRESSION_UNSPECIFIED');
  t.is(resolveStateCompression(2, 'f'), 'STATE_COMPRESSION_LZ4');
  t.is(resolveStateCompression('STATE_COMPRESSION_BROTLI', 'f'), 'STATE_COMPRESSION_BROTLI');
  for (const bad of [4, -1, 1.5, 'lz4', {}, true]) {
    t.regex(
      refusal(() => resolveStateCompression(bad, 'state.compression')),
      /^MALFORMED: state\.compression .* is not a state compression$/,
    );
  }
});

test('a compressed handle is accepted with a raw size up to max_state_bytes', (t) => {
  t.is(check(handle({ compression: 'STATE_COMPRESSION_LZ4', rawSizeBytes: 1_000_000 })), 'no error');
  t.is(check(handle({ compression: 3, rawSizeBytes: 400 })), 'no error');
  t.is(
    check(handle({ compression: 'STATE_COMPRESSION_BROTLI', rawSizeBytes: 1_000_001 })),
    'MALFORMED: state.raw_size_bytes 1000001 must be an integer from 0 to 1000000',
  );
});

test('an unknown compression is refused, in the handle and in its shared pieces', (t) => {
  t.is(check(handle({ compression: 7 as 3 })), 'MALFORMED: state.compression 7 is not a state compression');
  const shared = [handle({ uri: 'file:///s/piece', compression: 12 as 3 })];
  t.is(check(handle({ shared })), 'MALFORMED: state.shared.compression 12 is not a state compression');
});

test('an uncompressed handle states no raw size (written before compression) or its size', (t) => {
  t.is(check(handle({})), 'no error');
  t.is(check(handle({ compression: 'STATE_COMPRESSION_NONE', rawSizeBytes: 100 })), 'no error');
  t.is(
    check(handle({ compression: 'STATE_COMPRESSION_NONE', rawSizeBytes: 5000 })),
    'MALFORMED: state.raw_size_bytes 5000 must be 0 or size_bytes 100 for uncompressed state',
  );
});

test('an empty handle claims no compression and no raw size', (t) => {
  t.is(check({ uri: '', compression: 'STATE_COMPRESSION_NONE' }, 0), 'no error');
  t.is(check({ uri: '', compression: 'STATE_COMPRESSION_UNSPECIFIED', rawSizeBytes: 0 }, 0), 'no error');
  const claims = 'MALFORMED: state has a size, checksum, shared pieces, compression or raw size but no uri';
  t.is(check({ uri: '', compression: 'STATE_COMPRESSION_LZ4' }, 0), claims);
  t.is(check({ uri: '', rawSizeBytes: 10 }, 0), claims);
  t.is(check({ uri: '', compression: 5 as 3 }, 0), 'MALFORMED: state.compression 5 is not a state compression');
});
