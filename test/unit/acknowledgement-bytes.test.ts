/**
 * An acknowledgement's snapshots keep the bytes they were decoded from:
 * the Attach request's deserializer splits them out, and a manifest that
 * joins them decodes as the whole manifest's own encoding.
 */
import test from 'ava';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { AttachRequest__Output } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { Manifest } from '../../src/gen/ckpt/v1/Manifest.js';
import { codec, serviceDefinition } from '../../src/proto/index.js';
import { snapshotEncodings, withAcknowledgementBytes } from '../../src/server/attach.js';
import { encodeManifest, taskBytes } from '../../src/store/manifest-encoding.js';
import { simulatedSnapshot } from '../sim/index.js';

const requests = codec<AttachRequest, AttachRequest__Output>('AttachRequest');
const manifests = codec<Manifest, unknown>('Manifest');
const snapshotCodec = codec<unknown, unknown>('TaskSnapshot');

function acknowledgement(tasks: number): AttachRequest {
  return {
    acknowledge: {
      requestId: 9,
      epoch: 2,
      checkpointId: 7,
      snapshots: Array.from({ length: tasks }, (_, i) =>
        simulatedSnapshot({
          jobId: 'job',
          taskId: `t${i}`,
          checkpointId: 7,
          stateBytes: 50 * i,
          source: true,
          alignmentMs: i,
        }),
      ),
    },
  };
}

test('the snapshot encodings split out of a request are each snapshot, in order', (t) => {
  const request = acknowledgement(200);
  const entries = snapshotEncodings(requests.encode(request));
  if (entries === undefined) return t.fail('no snapshots found');
  t.is(entries.length, 200);
  entries.forEach((bytes, i) =>
    t.deepEqual(
      snapshotCodec.decode(bytes),
      snapshotCodec.decode(snapshotCodec.encode(request.acknowledge!.snapshots![i])),
    ),
  );
});

test('requests without an acknowledgement, or cut short, give no snapshot encodings', (t) => {
  t.is(snapshotEncodings(requests.encode({ heartbeat: { sentAtMs: 5 } })), undefined);
  const bytes = requests.encode(acknowledgement(3));
  t.is(snapshotEncodings(bytes.subarray(0, bytes.length - 4)), undefined);
  t.is(snapshotEncodings(Uint8Array.of(0x2a, 0x05, 0x01)), undefined, 'a length past the end');
  t.is(snapshotEncodings(Uint8Array.of(0x0b)), undefined, 'a group');
});

test('the deserializer keeps each snapshot its bytes, and the manifest joined from them decodes as the whole', (t) => {
  const attach = withAcknowledgementBytes(serviceDefinition('Coordinator')).Attach!;
  const bytes = Buffer.from(requests.encode(acknowledgement(50)));
  const decoded = attach.requestDeserialize(bytes) as AttachRequest__Output;
  const snapshots = decoded.acknowledge!.snapshots;
  t.is(snapshots.length, 50);
  const entries = snapshotEncodings(bytes)!;
  snapshots.forEach((s, i) => t.deepEqual(taskBytes(s), entries[i]));
  const manifest: Manifest = { jobId: 'job', checkpointId: 7, epoch: 2, tasks: snapshots };
  t.deepEqual(manifests.decode(encodeManifest(manifest)), manifests.decode(manifests.encode(manifest)));
  t.deepEqual(attach.requestDeserialize(Buffer.from(requests.encode({ heartbeat: { sentAtMs: 1 } }))), {
    ...requests.decode(requests.encode({ heartbeat: { sentAtMs: 1 } })),
  });
});
