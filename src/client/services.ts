/**
 * The typed grpc-js client constructors of the ckpt.v1 services, built once
 * from the shared protobuf root. Not from proto-loader's package definition:
 * its file descriptors, which only server reflection reads, cost a worker
 * process a good part of its start-up (and proto-loader's load).
 */
import * as grpc from '@grpc/grpc-js';
import { serviceDefinition } from '../proto/index.js';
import type { ProtoGrpcType as CoordinatorProto } from '../gen/coordinator.js';
import type { ProtoGrpcType as QueryProto } from '../gen/query.js';

/** The `ckpt.v1` service constructors, typed by the generated code. */
export type CkptGrpcNamespace = Pick<
  CoordinatorProto['ckpt']['v1'] & QueryProto['ckpt']['v1'],
  'Coordinator' | 'CheckpointQuery'
>;

let namespace: CkptGrpcNamespace | undefined;

/** The `ckpt.v1` service client constructors (each with its `service` definition). */
export function ckptGrpc(): CkptGrpcNamespace {
  namespace ??= {
    Coordinator: clientConstructor('Coordinator') as unknown as CkptGrpcNamespace['Coordinator'],
    CheckpointQuery: clientConstructor('CheckpointQuery') as unknown as CkptGrpcNamespace['CheckpointQuery'],
  };
  return namespace;
}

function clientConstructor(name: string): grpc.ServiceClientConstructor {
  return grpc.makeGenericClientConstructor(serviceDefinition(name), name);
}
