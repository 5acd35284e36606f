/**
 * The full gRPC package definition of ckpt.v1 (proto-loader), with the file
 * descriptors that server reflection serves. Only the server needs those:
 * building them costs a process about as much as parsing the contract, so
 * clients build their service constructors from the shared root instead
 * (`serviceClient`), and this module, with proto-loader, is kept off their
 * start-up.
 */
import * as protoLoader from '@grpc/proto-loader';
import type protobuf from 'protobufjs';
import { DESCRIPTOR_JSON } from '../gen/descriptor.js';
import { LOADER_OPTIONS } from './index.js';

let packageDefinition: protoLoader.PackageDefinition | undefined;

/**
 * The package definition for `grpc.loadPackageDefinition` and reflection,
 * from the descriptor `make gen` generated: reading it costs a process
 * start a third of parsing the `.proto` files.
 */
export function loadPackageDefinition(): protoLoader.PackageDefinition {
  packageDefinition ??= protoLoader.fromJSON(JSON.parse(DESCRIPTOR_JSON) as protobuf.INamespace, LOADER_OPTIONS);
  return packageDefinition;
}
