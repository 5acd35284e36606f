/**
 * The worker commands of the implementations in this repository.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The TypeScript SDK's adapter (run from the repository root). */
export const TS_WORKER = 'node --import tsx test/conformance/ts-worker.ts';

/** Where `make go-build` puts the Go library's adapter. */
export const GO_WORKER_BINARY = join(REPO, '.tmp', 'go', 'bin', 'ckpt-conformance-worker');

/** The Go adapter's sources. */
const GO_WORKER_SOURCES = join(REPO, 'go', 'src', 'ckpt', 'cmd', 'ckpt-conformance-worker');

/**
 * The Go adapter's command: the binary, (re)built by `make go-build` (Go
 * builds incrementally); `{ skip }` when the tree has no Go adapter.
 * Throws when the build fails.
 */
export function goWorker(): string | { skip: string } {
  if (!existsSync(GO_WORKER_SOURCES)) return { skip: `no Go conformance adapter in ${GO_WORKER_SOURCES}` };
  // system-deps is taken as done: a test must not install packages.
  execFileSync('make', ['-s', '-o', 'system-deps', 'go-build'], { cwd: REPO, stdio: 'inherit' });
  return GO_WORKER_BINARY;
}
