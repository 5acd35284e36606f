/**
 * The far end of the floor scenario, in a process of its own: a bare
 * grpc-js server of `bench/echo.proto` and a NATS responder, each answering
 * every message with itself.
 *
 * Requests: `start` with `nats` (server URLs) and `subject` resolves with
 * the gRPC address once both answer.
 */
import * as grpc from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import { loadEchoService, type EchoPing } from './echo-service.js';
import { serveParent } from './bench-child.js';

let server: grpc.Server | undefined;
let nc: NatsConnection | undefined;

async function start(nats: string[], subject: string): Promise<string> {
  nc = await connectNats(nats, 'bench-echo');
  nc.subscribe(subject, { callback: (_err, msg) => void msg.respond(msg.data) });
  await nc.flush();
  server = new grpc.Server();
  const { service } = loadEchoService();
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<EchoPing, EchoPing>, callback: grpc.sendUnaryData<EchoPing>) =>
      callback(null, call.request),
    Stream: (call: grpc.ServerDuplexStream<EchoPing, EchoPing>) => {
      call.on('data', (ping: EchoPing) => call.write(ping));
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server?.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err === null ? resolve(bound) : reject(err),
    ),
  );
  return `127.0.0.1:${port}`;
}

serveParent(
  {
    start: (request) => start(request.nats as string[], request.subject as string),
  },
  async () => {
    server?.forceShutdown();
    await nc?.close();
  },
);
