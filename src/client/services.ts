/**
 * The typed grpc-js client constructors of the ckpt.v1 services, built once
 * from the shared package definition.
 */
import * as grpc from '@grpc/grpc-js';
import { loadPackageDefinition } from '../proto/index.js';
import type { ProtoGrpcType as CoordinatorProto } from '../gen/coordinator.js';
import type { ProtoGrpcType as QueryProto } from '../gen/query.js';

/** The `ckpt.v1` namespace as grpc-js builds it, typed by the generated code. */
export type CkptGrpcNamespace = CoordinatorProto['ckpt']['v1'] & QueryProto['ckpt']['v1'];

let namespace: CkptGrpcNamespace | undefined;

/** The `ckpt.v1` service constructors and definitions (for clients and servers). */
export function ckptGrpc(): CkptGrpcNamespace {
  if (namespace === undefined) {
    const loaded = grpc.loadPackageDefinition(loadPackageDefinition()) as unknown as CoordinatorProto & QueryProto;
    namespace = loaded.ckpt.v1;
  }
  return namespace;
}
