/**
 * A stand-in for the coordinator's gRPC services that records what clients
 * send, for testing the clients and the simulated worker on their own. It
 * implements only what those tests need: sessions answer a hello with a
 * welcome, acknowledgements and declines are recorded and accepted.
 */
import * as grpc from '@grpc/grpc-js';
import { ckptGrpc } from '../../src/client/index.js';
import type { AcknowledgeCheckpointRequest__Output } from '../../src/gen/ckpt/v1/AcknowledgeCheckpointRequest.js';
import type { AttachRequest__Output } from '../../src/gen/ckpt/v1/AttachRequest.js';
import type { AttachResponse } from '../../src/gen/ckpt/v1/AttachResponse.js';
import type { DeclineCheckpointRequest__Output } from '../../src/gen/ckpt/v1/DeclineCheckpointRequest.js';
import type { WorkerHello__Output } from '../../src/gen/ckpt/v1/WorkerHello.js';

/** A reason and ids the stub fails a call with, as the coordinator would. */
export interface StubFailure {
  code: grpc.status;
  reason: string;
  message: string;
  ids?: Record<string, string>;
}

/** Options of `startStubCoordinator`. */
export interface StubOptions {
  subjectPrefix: string;
  /** Epoch named in welcomes. Default 1. */
  epoch?: number;
  /** Heartbeat interval named in welcomes. Default 50 ms. */
  heartbeatIntervalMs?: number;
  /** Fails a hello instead of welcoming it. */
  refuseHello?: (hello: WorkerHello__Output) => StubFailure | undefined;
}

/** A session as the stub saw it. */
export interface StubSession {
  hello: WorkerHello__Output;
  metadata: grpc.Metadata;
  heartbeats: number;
  /** The stream has ended (grpc-js reports a clean end and a cancellation alike). */
  ended: boolean;
  call: grpc.ServerDuplexStream<AttachRequest__Output, AttachResponse>;
}

/** A running stub. */
export interface StubCoordinator {
  address: string;
  sessions: StubSession[];
  acks: AcknowledgeCheckpointRequest__Output[];
  declines: DeclineCheckpointRequest__Output[];
  /** Metadata of every unary call, in order. */
  unaryMetadata: grpc.Metadata[];
  close(): void;
}

/** The trailing metadata of a coordinator error. */
export function failure(f: StubFailure): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set('ckpt-reason', f.reason);
  for (const [key, value] of Object.entries(f.ids ?? {})) metadata.set(key, value);
  return { code: f.code, details: `${f.reason}: ${f.message}`, metadata };
}

/** Starts the stub on a free loopback port. */
export async function startStubCoordinator(options: StubOptions): Promise<StubCoordinator> {
  const server = new grpc.Server();
  const stub: StubCoordinator = {
    address: '',
    sessions: [],
    acks: [],
    declines: [],
    unaryMetadata: [],
    close: () => server.forceShutdown(),
  };
  const notImplemented = (_call: unknown, cb: grpc.sendUnaryData<never>): void =>
    cb({ code: grpc.status.UNIMPLEMENTED, details: 'stub' });
  server.addService(ckptGrpc().Coordinator.service, {
    Attach: (call: grpc.ServerDuplexStream<AttachRequest__Output, AttachResponse>) => attach(call, stub, options),
    AcknowledgeCheckpoint: (
      call: grpc.ServerUnaryCall<AcknowledgeCheckpointRequest__Output, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      stub.unaryMetadata.push(call.metadata);
      stub.acks.push(call.request);
      cb(null, { acknowledgedTasks: call.request.snapshots.length, totalTasks: 0, duplicates: 0 });
    },
    DeclineCheckpoint: (
      call: grpc.ServerUnaryCall<DeclineCheckpointRequest__Output, unknown>,
      cb: grpc.sendUnaryData<unknown>,
    ) => {
      stub.unaryMetadata.push(call.metadata);
      stub.declines.push(call.request);
      cb(null, {});
    },
    SubmitJob: notImplemented,
    GetJob: notImplemented,
    CancelJob: notImplemented,
    TriggerCheckpoint: notImplemented,
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  stub.address = `127.0.0.1:${port}`;
  return stub;
}

function attach(
  call: grpc.ServerDuplexStream<AttachRequest__Output, AttachResponse>,
  stub: StubCoordinator,
  options: StubOptions,
): void {
  let session: StubSession | undefined;
  call.on('data', (message: AttachRequest__Output) => {
    if (message.hello) {
      const refused = options.refuseHello?.(message.hello);
      if (refused !== undefined) {
        call.emit('error', failure(refused));
        return;
      }
      session = { hello: message.hello, metadata: call.metadata, heartbeats: 0, ended: false, call };
      stub.sessions.push(session);
      call.write({
        welcome: {
          sessionId: `s${stub.sessions.length}`,
          epoch: options.epoch ?? 1,
          heartbeatIntervalMs: options.heartbeatIntervalMs ?? 50,
          heartbeatTimeoutMs: 1000,
          controlSubjectPrefix: `${options.subjectPrefix}.${message.hello.jobId}`,
        },
      });
    }
    if (message.heartbeat && session) session.heartbeats += 1;
  });
  call.on('end', () => {
    if (session) session.ended = true;
    call.end();
  });
  call.on('cancelled', () => {
    if (session) session.ended = true;
  });
  call.on('error', () => {});
}
