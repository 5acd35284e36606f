/**
 * The message rate of one bare bidirectional gRPC stream (`bench/echo.proto`
 * against the echo server of `echo-child.ts`): the transport's own limit,
 * which the acknowledgement intake is compared with.
 */
import { performance } from 'node:perf_hooks';
import type { EchoClient } from './echo-service.js';

/** Messages written and not yet answered on the stream at most. */
export const STREAM_WINDOW = 1000;

/**
 * Messages per second through one echo stream: `messages` messages of
 * `payload`, each answered on the stream, at most `STREAM_WINDOW`
 * unanswered; rate = answers / (last answer - first write).
 */
export async function streamRate(client: EchoClient, messages: number, payload: Buffer): Promise<number> {
  const call = client.Stream();
  return new Promise<number>((resolve, reject) => {
    let sent = 0;
    let answered = 0;
    const started = performance.now();
    const fill = (): void => {
      while (sent < messages && sent - answered < STREAM_WINDOW) call.write({ seq: sent++, payload });
    };
    call.on('data', () => {
      answered += 1;
      if (answered === messages) {
        const seconds = (performance.now() - started) / 1000;
        call.end();
        resolve(messages / seconds);
      } else fill();
    });
    call.on('error', reject);
    fill();
  });
}
