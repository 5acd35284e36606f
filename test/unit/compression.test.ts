/**
 * Compression of snapshot pieces: round trips of every codec, the choice of
 * `none` for data that does not shrink, and the refusal of pieces that are
 * truncated, garbled, of another raw size, or inflate past their raw size.
 */
import { randomBytes } from 'node:crypto';
import { brotliCompressSync, constants, createBrotliCompress } from 'node:zlib';
import test from 'ava';
import fc from 'fast-check';
import { CkptError } from '../../src/core/errors.js';
import {
  compressPiece,
  decodeStoredPiece,
  decompressPiece,
  describePiece,
  encodePiece,
  encodeKeyedState,
  KeyedState,
  PIECE_CODECS,
  pieceCodecOf,
  type PieceCodec,
} from '../../src/sdk/state/index.js';
import type { StateHandle__Output } from '../../src/gen/ckpt/v1/StateHandle.js';

const URI = 'file:///state/job/task/7';
const MIB = 1_048_576;
const COMPRESSED: readonly PieceCodec[] = PIECE_CODECS.filter((codec) => codec !== 'none');

/** The keyed state of a word count with `words` distinct words: what compresses in practice. */
function wordCountState(words: number): Uint8Array {
  const state = new KeyedState<number>();
  for (let i = 0; i < words; i++) state.set(`word-${(i * 7919) % words}-${'ab'.repeat(i % 5)}`, (i * 31) % 1000);
  return encodeKeyedState(state);
}

/** Bytes as a Buffer, so that views and Buffers of equal bytes compare equal. */
const bytes = (view: Uint8Array): Buffer => Buffer.from(view.buffer, view.byteOffset, view.length);

async function roundTrip(codec: PieceCodec, raw: Uint8Array): Promise<Uint8Array> {
  const stored = await compressPiece(codec, raw);
  return decompressPiece(codec, stored, raw.length, { uri: URI });
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return err instanceof CkptError ? err.message : `not a CkptError: ${String(err)}`;
  }
  return 'no error';
}

/** Brotli of 1 GiB of zeros, fed in 1 MiB slices so that it is never held whole: about 1 KiB. */
async function brotliBomb(): Promise<Buffer> {
  const encoder = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 5 } });
  const chunks: Buffer[] = [];
  encoder.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve) => encoder.on('end', resolve));
  const zeros = Buffer.alloc(MIB);
  for (let i = 0; i < 1024; i++) {
    if (!encoder.write(zeros)) await new Promise((resolve) => encoder.once('drain', resolve));
  }
  encoder.end();
  await ended;
  return Buffer.concat(chunks);
}

test.serial('a Brotli bomb is refused at its raw size, quickly and without inflating it', async (t) => {
  const bomb = await brotliBomb();
  t.true(bomb.length < 4096, `the bomb is ${bomb.length} bytes`);
  const rssBefore = process.memoryUsage().rss;
  const began = performance.now();
  t.is(
    await refusal(decompressPiece('brotli', bomb, MIB, { uri: URI })),
    `INTERNAL: snapshot ${URI} is corrupt: it inflates to more than its raw size of ${MIB} bytes`,
  );
  const growthMiB = (process.memoryUsage().rss - rssBefore) / MIB;
  t.true(growthMiB < 32, `rss grew by ${growthMiB.toFixed(1)} MiB`);
  t.true(performance.now() - began < 2000, 'refused within 2 s');
});

test.serial('an LZ4 piece stating more than its handle is refused before anything is allocated', async (t) => {
  const stored = await compressPiece('lz4', new Uint8Array(1024));
  new DataView(stored.buffer, stored.byteOffset).setUint32(0, 0xffff_fff0, true);
  const rssBefore = process.memoryUsage().rss;
  t.is(
    await refusal(decompressPiece('lz4', stored, 1024, { uri: URI })),
    `INTERNAL: snapshot ${URI} is corrupt: its LZ4 data states 4294967280 bytes, the handle says 1024`,
  );
  t.true(process.memoryUsage().rss - rssBefore < 32 * MIB);
});

test('every codec round-trips empty, one-byte, small and large pieces', async (t) => {
  const inputs = [new Uint8Array(0), Uint8Array.of(42), wordCountState(50), wordCountState(100_000)];
  for (const codec of PIECE_CODECS) {
    for (const raw of inputs)
      t.deepEqual(bytes(await roundTrip(codec, raw)), bytes(raw), `${codec} of ${raw.length} bytes`);
  }
  t.true(inputs[3]!.length > 2 * MIB, 'the large piece spans several zlib chunks');
});

test('a view into a larger buffer compresses only its own bytes', async (t) => {
  const whole = wordCountState(1000);
  const view = whole.subarray(100, 5000);
  for (const codec of PIECE_CODECS) t.deepEqual(bytes(await roundTrip(codec, view)), bytes(view), codec);
});

test('encodePiece compresses keyed state and keeps random bytes as they are', async (t) => {
  const state = wordCountState(20_000);
  const random = randomBytes(256 * 1024);
  for (const codec of COMPRESSED) {
    const packed = await encodePiece(codec, state);
    t.is(packed.codec, codec);
    t.is(packed.rawSizeBytes, state.length);
    t.true(packed.bytes.length < state.length / 2, `${codec} halves keyed state`);
    const kept = await encodePiece(codec, random);
    t.deepEqual(kept, { codec: 'none', bytes: random, rawSizeBytes: random.length }, `${codec} of random bytes`);
    t.is((await encodePiece(codec, new Uint8Array(0))).codec, 'none', `${codec} of nothing`);
  }
});

test('a handle described for its piece reads back through decodeStoredPiece', async (t) => {
  const raw = wordCountState(500);
  const piece = await encodePiece('brotli', raw);
  const stored: StateHandle__Output = {
    uri: URI,
    sizeBytes: piece.bytes.length,
    checksum: 'sha256:',
    shared: [],
    compression: 'STATE_COMPRESSION_NONE',
    rawSizeBytes: piece.bytes.length,
    inFlightRecords: false,
  };
  const handle = describePiece(stored, piece);
  t.is(handle.compression, 'STATE_COMPRESSION_BROTLI');
  t.is(handle.rawSizeBytes, raw.length);
  t.deepEqual(bytes(await decodeStoredPiece(handle, piece.bytes)), bytes(raw));
  const legacy = { ...stored, compression: 'STATE_COMPRESSION_UNSPECIFIED' as const, rawSizeBytes: 0 };
  t.deepEqual(
    bytes(await decodeStoredPiece(legacy, raw)),
    bytes(raw),
    'a handle from before compression reads as stored',
  );
  t.is(
    await refusal(decodeStoredPiece({ ...handle, compression: 9 as unknown as 'STATE_COMPRESSION_NONE' }, raw)),
    `MALFORMED: state handle "${URI}" compression 9 is not a state compression`,
  );
});

test('truncated and garbled pieces are refused as corrupt, naming the uri', async (t) => {
  const raw = wordCountState(2000);
  for (const codec of COMPRESSED) {
    const stored = await compressPiece(codec, raw);
    const truncated = stored.subarray(0, stored.length - 7);
    t.regex(
      await refusal(decompressPiece(codec, truncated, raw.length, { uri: URI })),
      new RegExp(`^INTERNAL: snapshot ${URI} is corrupt: its (LZ4|Brotli) data cannot be decompressed: .+`),
      `${codec} truncated`,
    );
    const garbled = Uint8Array.from(stored);
    for (let i = 8; i < garbled.length; i += 16) garbled[i] = garbled[i]! ^ 0x5a;
    t.regex(
      await refusal(decompressPiece(codec, garbled, raw.length, { uri: URI })),
      /^INTERNAL: snapshot .* is corrupt: /,
      `${codec} garbled`,
    );
  }
  t.regex(
    await refusal(decompressPiece('lz4', Uint8Array.of(1, 2), 1, { uri: URI })),
    /is corrupt: its 2 bytes are too short for an LZ4 piece/,
  );
});

test('a piece of another raw size than its handle states is refused', async (t) => {
  const raw = wordCountState(1000);
  const brotli = brotliCompressSync(raw);
  t.is(
    await refusal(decompressPiece('brotli', brotli, raw.length + 1, { uri: URI })),
    `INTERNAL: snapshot ${URI} is corrupt: it has ${raw.length} raw bytes, the handle says ${raw.length + 1}`,
  );
  t.regex(
    await refusal(decompressPiece('brotli', brotli, raw.length - 1, { uri: URI })),
    /is corrupt: it inflates to more than its raw size/,
  );
  t.regex(
    await refusal(decompressPiece('lz4', await compressPiece('lz4', raw), raw.length - 1, { uri: URI })),
    /is corrupt: its LZ4 data states \d+ bytes, the handle says \d+/,
  );
  t.regex(
    await refusal(decompressPiece('none', raw, raw.length + 5, { uri: URI })),
    /is corrupt: it has \d+ raw bytes/,
  );
});

test('a raw size that is invalid or above the limit is a malformed handle', async (t) => {
  const stored = await compressPiece('brotli', new Uint8Array(10));
  t.is(
    await refusal(decompressPiece('brotli', stored, 2 * 1024 ** 3, { uri: URI })),
    `MALFORMED: state handle "${URI}" has a raw size of 2147483648 bytes, more than the 1073741824 a piece may have`,
  );
  t.regex(
    await refusal(decompressPiece('brotli', stored, 11, { uri: URI, maxRawBytes: 10 })),
    /has a raw size of 11 bytes, more than the 10/,
  );
  t.regex(await refusal(decompressPiece('none', stored, -1, { uri: URI })), /has an invalid raw size -1/);
  t.regex(await refusal(decompressPiece('none', stored, 1, { uri: URI, maxRawBytes: -3 })), /maxRawBytes -3/);
});

test('pieceCodecOf reads a handle or policy value; UNSPECIFIED is none', (t) => {
  t.is(pieceCodecOf(undefined), 'none');
  t.is(pieceCodecOf('STATE_COMPRESSION_UNSPECIFIED'), 'none');
  t.is(pieceCodecOf(1), 'none');
  t.is(pieceCodecOf('STATE_COMPRESSION_LZ4'), 'lz4');
  t.is(pieceCodecOf(3), 'brotli');
  t.throws(() => pieceCodecOf(4, 'policy.compression'), {
    message: 'MALFORMED: policy.compression 4 is not a state compression',
  });
});

test('property: every codec round-trips any bytes through encodePiece', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...PIECE_CODECS),
      fc.oneof(
        fc.uint8Array({ maxLength: 4096 }),
        fc.string({ maxLength: 2000 }).map((s) => Buffer.from(s.repeat(3))),
      ),
      async (codec, raw) => {
        const piece = await encodePiece(codec, raw);
        const back = await decompressPiece(piece.codec, piece.bytes, piece.rawSizeBytes, { uri: URI });
        return bytes(back).equals(raw) && piece.bytes.length <= raw.length;
      },
    ),
    { numRuns: 300 },
  );
  t.pass();
});

test('property: arbitrary stored bytes decompress to the stated size or are refused with a CkptError', async (t) => {
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...COMPRESSED),
      fc.uint8Array({ maxLength: 512 }),
      fc.nat({ max: 65_536 }),
      async (codec, stored, rawSizeBytes) => {
        try {
          const raw = await decompressPiece(codec, stored, rawSizeBytes, { uri: URI });
          return raw.length === rawSizeBytes;
        } catch (err) {
          return err instanceof CkptError;
        }
      },
    ),
    { numRuns: 500 },
  );
  t.pass();
});
