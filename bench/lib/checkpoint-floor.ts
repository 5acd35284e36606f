/**
 * The floor of one checkpoint: what a perfect implementation on the same
 * systems pays for the same work, with no ckpt code in the path. This
 * process plays the coordinator: it publishes one NATS message (the
 * trigger, encoded as ckpt encodes one) that reaches every worker process;
 * each answers with one message on its bare gRPC stream to a server here,
 * of the bytes its SDK worker sent to acknowledge the same checkpoint; once
 * all are in, one etcd transaction with the keys and values the
 * coordinator committed for it (`commit-capture.ts`). The round's time is
 * from the publish to etcd's answer.
 */
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/bus/index.js';
import type { Trigger } from '../../src/gen/ckpt/v1/Trigger.js';
import { codec } from '../../src/proto/index.js';
import type { CapturedCommit, CommitReplay } from './commit-capture.js';
import { loadEchoService, type EchoPing } from './echo-service.js';

/** How long a round waits for every worker's message. */
const ARRIVAL_TIMEOUT_MS = 30_000;

/** One floor round, in ms. */
export interface FloorRound {
  /** Publish to etcd's answer. */
  ms: number;
  /** Publish to the last worker's message. */
  fanOutMs: number;
  /** The transaction alone. */
  txnMs: number;
}

/** The coordinator's end of the floor: a NATS connection and a bare gRPC server. */
export class CheckpointFloor {
  readonly address: string;
  readonly subject: string;
  readonly #nc: NatsConnection;
  readonly #server: grpc.Server;
  readonly #trigger = codec<Trigger, unknown>('Trigger');
  #expected: { seq: number; count: number; done: () => void } | undefined;

  private constructor(nc: NatsConnection, server: grpc.Server, address: string, subject: string) {
    this.#nc = nc;
    this.#server = server;
    this.address = address;
    this.subject = subject;
  }

  /** Connects to NATS and starts the server; triggers go out on `subject`. */
  static async start(nats: string[], subject: string): Promise<CheckpointFloor> {
    const nc = await connectNats(nats, 'bench-floor-coordinator');
    const server = new grpc.Server();
    let onArrival: (seq: number) => void = () => {};
    server.addService(loadEchoService().service, {
      Stream: (call: grpc.ServerDuplexStream<EchoPing, EchoPing>) => {
        call.on('data', (ping: EchoPing) => onArrival(ping.seq));
        call.on('end', () => call.end());
        call.on('error', () => {});
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err === null ? resolve(bound) : reject(err),
      ),
    );
    const floor = new CheckpointFloor(nc, server, `127.0.0.1:${port}`, subject);
    onArrival = (seq) => floor.#arrived(seq);
    return floor;
  }

  /**
   * One round for `commit` with `workers` worker processes answering; the
   * trigger names the job, checkpoint and epoch as ckpt's does.
   */
  async round(commit: CapturedCommit, workers: number, replay: CommitReplay, trigger: Trigger): Promise<FloorRound> {
    const arrived = this.#expect(commit.checkpointId, workers);
    const bytes = this.#trigger.encode({ ...trigger, triggeredAtMs: Date.now(), deadlineMs: Date.now() + 60_000 });
    const started = performance.now();
    this.#nc.publish(this.subject, bytes);
    await arrived;
    const fannedOut = performance.now();
    await replay.replay(commit);
    const ended = performance.now();
    return { ms: ended - started, fanOutMs: fannedOut - started, txnMs: ended - fannedOut };
  }

  /** Stops the server and closes the connection. */
  async close(): Promise<void> {
    this.#server.forceShutdown();
    await this.#nc.close();
  }

  #expect(seq: number, count: number): Promise<void> {
    if (this.#expected !== undefined) throw new Error('a floor round is running already');
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#expected = undefined;
        reject(new Error(`floor round ${seq}: not every worker answered within ${ARRIVAL_TIMEOUT_MS} ms`));
      }, ARRIVAL_TIMEOUT_MS);
      this.#expected = {
        seq,
        count,
        done: () => {
          clearTimeout(timer);
          this.#expected = undefined;
          resolve();
        },
      };
    });
  }

  #arrived(seq: number): void {
    const expected = this.#expected;
    if (expected === undefined || expected.seq !== seq) return;
    expected.count -= 1;
    if (expected.count === 0) expected.done();
  }
}
