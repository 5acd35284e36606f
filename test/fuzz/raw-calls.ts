/**
 * Calls with request bytes as the body: a grpc-js client with identity
 * serializers, so that anything (an unchecked encoding, random bytes)
 * reaches the coordinator. Every call ends in an `Outcome`: the status the
 * coordinator answered with, a response, or nothing within the deadline.
 */
import * as grpc from '@grpc/grpc-js';

/** What one call ended in. */
export type Outcome =
  | { kind: 'ok'; ms: number; responses: Buffer[] }
  | { kind: 'status'; ms: number; code: grpc.status; details: string; reason: string | undefined }
  | { kind: 'open'; ms: number; responses: Buffer[] }
  | { kind: 'hang'; ms: number; responses: Buffer[] };

/** Bearer metadata for a coordinator started with `--auth-token`. */
export function bearer(token: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

const identity = (b: Buffer): Buffer => b;

function statusOutcome(err: grpc.ServiceError | grpc.StatusObject, started: number): Outcome {
  const values = err.metadata?.get('ckpt-reason') ?? [];
  const reason = typeof values[0] === 'string' ? values[0] : undefined;
  return { kind: 'status', ms: Date.now() - started, code: err.code, details: err.details, reason };
}

/** A status the client made up because the call outlived its deadline: the coordinator never answered. */
function isOwnDeadline(err: grpc.ServiceError, started: number, deadlineMs: number): boolean {
  return err.code === grpc.status.DEADLINE_EXCEEDED && Date.now() - started >= deadlineMs - 5;
}

/** A raw client of one coordinator, with the token on every call. */
export class RawClient {
  readonly #client: grpc.Client;
  readonly #metadata: grpc.Metadata;

  constructor(address: string, token: string) {
    this.#client = new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
    });
    this.#metadata = bearer(token);
  }

  close(): void {
    this.#client.close();
  }

  /** A unary call: 'ok', 'status', or 'hang' when nothing came back within `deadlineMs`. */
  unary(path: string, body: Buffer, deadlineMs: number): Promise<Outcome> {
    const started = Date.now();
    return new Promise((resolve) => {
      this.#client.makeUnaryRequest(
        path,
        identity,
        identity,
        body,
        this.#metadata.clone(),
        { deadline: started + deadlineMs },
        (err, response) => {
          if (err && isOwnDeadline(err, started, deadlineMs)) {
            resolve({ kind: 'hang', ms: Date.now() - started, responses: [] });
          } else if (err) {
            resolve(statusOutcome(err, started));
          } else {
            resolve({ kind: 'ok', ms: Date.now() - started, responses: response ? [response] : [] });
          }
        },
      );
    });
  }

  /**
   * A server stream: 'status' if it ends within `deadlineMs`, else 'open'
   * once `openAfterMs` has passed (the call is then cancelled). Pass
   * `openAfterMs >= deadlineMs` for a request that must be refused: it is
   * then 'hang' when still open at the deadline.
   */
  serverStream(path: string, body: Buffer, openAfterMs: number, deadlineMs: number): Promise<Outcome> {
    const started = Date.now();
    const responses: Buffer[] = [];
    return new Promise((resolve) => {
      const call = this.#client.makeServerStreamRequest(path, identity, identity, body, this.#metadata.clone(), {});
      let settled = false;
      const settle = (outcome: Outcome): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        call.cancel();
        resolve(outcome);
      };
      const waitMs = Math.min(openAfterMs, deadlineMs);
      const timer = setTimeout(() => {
        const kind = openAfterMs >= deadlineMs ? 'hang' : 'open';
        settle({ kind, ms: Date.now() - started, responses });
      }, waitMs);
      call.on('data', (b: Buffer) => responses.push(b));
      call.on('error', (err: grpc.ServiceError) => settle(statusOutcome(err, started)));
      call.on('status', (status: grpc.StatusObject) => {
        if (status.code === grpc.status.OK) settle({ kind: 'ok', ms: Date.now() - started, responses });
      });
    });
  }

  /** Opens an Attach stream whose frames are raw `AttachRequest` bytes. */
  attach(): RawAttach {
    return new RawAttach(
      this.#client.makeBidiStreamRequest('/ckpt.v1.Coordinator/Attach', identity, identity, this.#metadata.clone(), {}),
    );
  }
}

/** An Attach stream as frames: write raw requests, wait for responses or the stream's status. */
export class RawAttach {
  readonly responses: Buffer[] = [];
  readonly #call: grpc.ClientDuplexStream<Buffer, Buffer>;
  readonly #started = Date.now();
  #status: Outcome | undefined;
  #waiters: Array<() => void> = [];

  constructor(call: grpc.ClientDuplexStream<Buffer, Buffer>) {
    this.#call = call;
    call.on('data', (b: Buffer) => {
      this.responses.push(b);
      this.#wake();
    });
    call.on('error', (err: grpc.ServiceError) => {
      this.#status ??= statusOutcome(err, this.#started);
      this.#wake();
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (status.code === grpc.status.OK) this.#status ??= statusOutcome(status, this.#started);
      this.#wake();
    });
  }

  /** The stream's end, once the coordinator has ended it. */
  get status(): Outcome | undefined {
    return this.#status;
  }

  write(frame: Buffer): void {
    if (this.#status === undefined) this.#call.write(frame);
  }

  /**
   * Resolves once `done(responses)` holds or the stream has ended; false
   * when neither happened within `timeoutMs`.
   */
  async until(done: (responses: readonly Buffer[]) => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!done(this.responses) && this.#status === undefined) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }

  /** Ends the stream from this side and cancels it. */
  close(): void {
    this.#call.end();
    this.#call.cancel();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}
