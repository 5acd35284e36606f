/**
 * `make cluster`'s program (examples/wordcount/cluster.ts) in its checking
 * mode: the word count on 3 etcd members, 3 NATS servers and 2
 * coordinators with TLS and a user on every link commits checkpoints, as
 * its reader sees them over mutual TLS. While it runs, every server refuses
 * a client without TLS or without a certificate of the cluster's CA, so no
 * link can have checkpointed in plain text. Afterwards no process and no
 * file is left.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import test, { type ExecutionContext } from 'ava';
import { createCoordinatorClient } from '../../src/client/index.js';
import { httpGet } from '../../src/dev/http-get.js';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PROGRAM = join(REPO, 'examples', 'wordcount', 'cluster.ts');

/** What the program printed, field by field. */
interface Printed {
  lines: string[];
  coordinators: string[];
  etcd: string[];
  nats: string[];
  dir: string | undefined;
}

/** The addresses after `label` in the printed lines. */
function addresses(lines: readonly string[], label: RegExp): string[] {
  const line = lines.find((l) => label.test(l)) ?? '';
  return line.replace(label, '').trim().split(',').filter(Boolean);
}

test('the secure cluster commits checkpoints with TLS and client certificates on every link, then leaves nothing', async (t) => {
  t.timeout(120_000);
  const child = spawn(process.execPath, ['--import=tsx', PROGRAM, '--for-seconds', '12'], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => void child.kill('SIGKILL'));
  const printed: Printed = { lines: [], coordinators: [], etcd: [], nats: [], dir: undefined };
  const stderr: string[] = [];
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const probes: Promise<void>[] = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    printed.lines.push(line);
    if (/^logs: /.test(line)) probes.push(probeWhileRunning(t, printed));
  });
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  await Promise.all(probes);
  t.log(printed.lines.filter((l) => !l.startsWith('  ') && l !== '').join('\n'));
  t.is(code, 0, `exit code; stderr:\n${stderr.join('').slice(-2000)}`);
  t.true(probes.length === 1, 'the program printed how to reach the cluster');
  const check = printed.lines.find((l) => l.startsWith('cluster check:')) ?? '';
  const latest = Number(/latest committed checkpoint (\d+)/.exec(check)?.[1] ?? 0);
  t.true(latest >= 2, check);
  t.truthy(printed.dir);
  t.false(existsSync(printed.dir ?? '/'), 'the cluster directory is removed');
});

/** Reads the printed addresses and checks that each kind of server refuses what is not TLS with a certificate. */
async function probeWhileRunning(t: ExecutionContext, p: Printed): Promise<void> {
  p.coordinators = addresses(p.lines, /^coordinators \(gRPC, mutual TLS\): /);
  p.etcd = addresses(p.lines, /^etcd \([^)]*\): /);
  p.nats = addresses(p.lines, /^NATS \([^)]*\): /);
  p.dir = /^certificates: (\S+)\/pki /.exec(p.lines.find((l) => l.startsWith('certificates: ')) ?? '')?.[1];
  t.is(p.coordinators.length, 2);
  t.is(p.etcd.length, 3);
  t.is(p.nats.length, 3);
  t.true(
    p.etcd.every((u) => u.startsWith('https://')),
    'etcd serves HTTPS only',
  );
  for (const url of p.etcd) {
    const plain = await httpGet(url.replace('https://', 'http://') + '/version', AbortSignal.timeout(3_000)).then(
      (r) => `answered ${r.status}`,
      (err: unknown) => (err as Error).message,
    );
    t.false(plain.startsWith('answered 2'), `etcd ${url} in plain HTTP: ${plain}`);
  }
  for (const url of p.nats) {
    const plain = await connect({ servers: url, timeout: 3_000, maxReconnectAttempts: 0, reconnect: false }).then(
      (nc) => nc.close().then(() => 'connected'),
      (err: unknown) => (err as Error).message,
    );
    t.not(plain, 'connected', `NATS ${url} without TLS`);
  }
  const ca = join(p.dir ?? '', 'pki', 'ca.pem');
  for (const [what, tls] of [
    ['in plain text', false],
    ['with TLS but no client certificate', { caFile: ca }],
  ] as const) {
    const client = createCoordinatorClient(p.coordinators, { tls, retry: { timeoutMs: 3_000 } });
    const outcome = await client.getJob({ jobId: 'wordcount' }, { deadlineMs: 3_000 }).then(
      () => 'answered',
      (err: unknown) => (err as Error).message,
    );
    client.close();
    t.not(outcome, 'answered', `a coordinator ${what}`);
  }
}
