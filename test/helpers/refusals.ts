/**
 * Asking a coordinator for what it must refuse: a call's refusal with its
 * reason, a raw `Attach` stream and how it ended, and the generic gRPC
 * services (health, reflection) spoken with hand-encoded bytes.
 */
import * as grpc from '@grpc/grpc-js';
import type { ExecutionContext } from 'ava';
import { errorInfo, type AttachStream, type CoordinatorClient } from '../../src/client/index.js';
import type { ErrorReason } from '../../src/core/errors.js';
import type { AttachRequest } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse__Output } from '../../src/gen/ckpt/v1/AttachResponse.js';

/** Asserts that `call` fails with `reason` (and `code` when given); returns the error. */
export async function refused(
  t: ExecutionContext,
  call: Promise<unknown>,
  reason: ErrorReason,
  code?: grpc.status,
): Promise<grpc.ServiceError> {
  const err = await t.throwsAsync<grpc.ServiceError>(call);
  const info = errorInfo(err);
  t.is(info?.reason, reason, `expected ${reason}, got ${info?.reason ?? 'none'}: ${err?.message ?? ''}`);
  if (code !== undefined) t.is(err?.code, code);
  return err;
}

/** An `Attach` stream that sent `messages`: what it received, and how it ended (the error, or none). */
export interface RawSession {
  call: AttachStream;
  got: AttachResponse__Output[];
  ended: Promise<grpc.ServiceError | undefined>;
}

/** Opens an `Attach` stream and sends `messages` in order. */
export function rawSession(client: CoordinatorClient, messages: AttachRequest[]): RawSession {
  const call = client.attach();
  const got: AttachResponse__Output[] = [];
  const ended = new Promise<grpc.ServiceError | undefined>((resolve) => {
    call.on('error', (err: grpc.ServiceError) => resolve(err));
    call.on('end', () => resolve(undefined));
  });
  call.on('data', (m: AttachResponse__Output) => got.push(m));
  for (const m of messages) call.write(m);
  return { call, got, ended };
}

/** The services server reflection lists, as latin1 text of its first answer. */
export function reflectionList(raw: grpc.Client, metadata = new grpc.Metadata()): Promise<string> {
  return new Promise((resolve, reject) => {
    const call = raw.makeBidiStreamRequest(
      '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
      (b: Buffer) => b,
      (b: Buffer) => b,
      metadata,
    );
    call.on('data', (b: Buffer) => {
      resolve(b.toString('latin1'));
      call.end();
    });
    call.on('error', reject);
    // ServerReflectionRequest { list_services = "" } (field 7).
    call.write(Buffer.from([0x3a, 0x00]));
  });
}

/** The health service's answer for `service` ('' for the server): `[0x08, 0x01]` is SERVING. */
export function healthCheck(raw: grpc.Client, service: string): Promise<Buffer> {
  const name = Buffer.from(service);
  return new Promise((resolve, reject) => {
    raw.makeUnaryRequest(
      '/grpc.health.v1.Health/Check',
      (b: Buffer) => b,
      (b: Buffer) => b,
      // grpc.health.v1.HealthCheckRequest { service }, hand-encoded.
      Buffer.concat([Buffer.from([0x0a, name.length]), name]),
      (err, res) => (err ? reject(err) : resolve(res as Buffer)),
    );
  });
}
