import test from 'ava';
import { DESCRIPTOR_JSON } from '../../src/gen/descriptor.js';
import { codec, descriptorJson, parseProtoFiles, serviceDefinition } from '../../src/proto/index.js';
import { loadPackageDefinition } from '../../src/proto/package-definition.js';

test('the generated descriptor is the contract in proto/ (run make gen after changing a .proto file)', (t) => {
  t.is(DESCRIPTOR_JSON, descriptorJson(parseProtoFiles()));
});

test('the services and codecs loaded from the descriptor speak the contract', (t) => {
  const definition = loadPackageDefinition();
  t.deepEqual(Object.keys(definition['ckpt.v1.Coordinator'] ?? {}).sort(), [
    'AcknowledgeCheckpoint',
    'Attach',
    'CancelJob',
    'CollectGarbage',
    'DeclineCheckpoint',
    'DeleteSavepoint',
    'GetJob',
    'ListSavepoints',
    'RestoreJob',
    'SubmitJob',
    'TriggerCheckpoint',
    'TriggerSavepoint',
  ]);
  const trigger = codec<Record<string, unknown>, Record<string, unknown>>('Trigger');
  const decoded = trigger.decode(trigger.encode({ checkpointId: 7, epoch: 2, snapshotType: 'SNAPSHOT_TYPE_FULL' }));
  t.like(decoded, { checkpointId: 7, epoch: 2, snapshotType: 'SNAPSHOT_TYPE_FULL' });
});

test("the clients' method definitions match the server's package definition", (t) => {
  const definition = loadPackageDefinition();
  for (const name of ['Coordinator', 'CheckpointQuery']) {
    const served = definition[`ckpt.v1.${name}`] as unknown as Record<string, Record<string, unknown>>;
    const called = serviceDefinition(name);
    t.deepEqual(Object.keys(called).sort(), Object.keys(served).sort(), name);
    for (const [method, d] of Object.entries(called)) {
      const s = served[method] ?? {};
      const pick = (m: Record<string, unknown>) => [m.path, m.requestStream, m.responseStream, m.originalName];
      t.deepEqual(pick(d as unknown as Record<string, unknown>), pick(s), `${name}.${method}`);
    }
  }
  const trigger = serviceDefinition('Coordinator').TriggerCheckpoint;
  const request = { jobId: 'j' };
  t.like(trigger?.requestDeserialize(trigger.requestSerialize(request)) as object, request);
});
