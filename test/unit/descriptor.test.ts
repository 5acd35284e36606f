import test from 'ava';
import { DESCRIPTOR_JSON } from '../../src/gen/descriptor.js';
import { codec, descriptorJson, loadPackageDefinition, parseProtoFiles } from '../../src/proto/index.js';

test('the generated descriptor is the contract in proto/ (run make gen after changing a .proto file)', (t) => {
  t.is(DESCRIPTOR_JSON, descriptorJson(parseProtoFiles()));
});

test('the services and codecs loaded from the descriptor speak the contract', (t) => {
  const definition = loadPackageDefinition();
  t.deepEqual(Object.keys(definition['ckpt.v1.Coordinator'] ?? {}).sort(), [
    'AcknowledgeCheckpoint',
    'Attach',
    'CancelJob',
    'DeclineCheckpoint',
    'GetJob',
    'RestoreJob',
    'SubmitJob',
    'TriggerCheckpoint',
  ]);
  const trigger = codec<Record<string, unknown>, Record<string, unknown>>('Trigger');
  const decoded = trigger.decode(trigger.encode({ checkpointId: 7, epoch: 2, snapshotType: 'SNAPSHOT_TYPE_FULL' }));
  t.like(decoded, { checkpointId: 7, epoch: 2, snapshotType: 'SNAPSHOT_TYPE_FULL' });
});
