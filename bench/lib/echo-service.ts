/**
 * `bench/echo.proto` loaded for grpc-js: the service definition for the
 * server and the client constructor, with the message type both use.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const ECHO_PROTO = join(dirname(fileURLToPath(import.meta.url)), '..', 'echo.proto');

/** `ckptbench.Ping` as grpc-js hands it over (longs as numbers). */
export interface EchoPing {
  seq: number;
  payload: Buffer;
}

/** The loaded `ckptbench.Echo` service. */
export interface EchoService {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
}

/** A client of `ckptbench.Echo`. */
export interface EchoClient extends grpc.Client {
  Unary(request: EchoPing, callback: grpc.requestCallback<EchoPing>): grpc.ClientUnaryCall;
  Stream(): grpc.ClientDuplexStream<EchoPing, EchoPing>;
}

/** An insecure client of the echo server at `address`. */
export function createEchoClient(address: string): EchoClient {
  const { Client } = loadEchoService();
  return new Client(address, grpc.credentials.createInsecure()) as unknown as EchoClient;
}

/** Loads `ckptbench.Echo` from `bench/echo.proto`. */
export function loadEchoService(): EchoService {
  const definition = protoLoader.loadSync(ECHO_PROTO, { longs: Number, defaults: true });
  const pkg = grpc.loadPackageDefinition(definition) as { ckptbench: { Echo: grpc.ServiceClientConstructor } };
  const Client = pkg.ckptbench.Echo;
  return { service: Client.service, Client };
}
