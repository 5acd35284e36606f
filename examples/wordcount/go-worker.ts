/**
 * The word count's Go worker (go/src/ckpt/examples/wordcount-split): its
 * build with Debian's Go packages in GOPATH mode (nothing is downloaded),
 * and its command line, the same flags as `worker.ts`.
 */
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where `buildGoWorker` puts the binary (as `make go-build` does its binaries). */
export const GO_WORKER_BINARY = join(ROOT, '.tmp', 'go', 'bin', 'wordcount-split');

/** The environment `make go-build` builds with. */
function goEnv(): NodeJS.ProcessEnv {
  return {
    ...process.env,
    GO111MODULE: 'off',
    GOPATH: `${join(ROOT, 'go')}:/usr/share/gocode`,
    GOFLAGS: '',
    GOCACHE: join(ROOT, '.tmp', 'go-cache'),
  };
}

/**
 * Builds the Go worker into `GO_WORKER_BINARY` (quick when nothing
 * changed). Rejects with the compiler's output, or with what to install
 * when Go is missing.
 */
export async function buildGoWorker(): Promise<string> {
  try {
    await promisify(execFile)('go', ['build', '-o', GO_WORKER_BINARY, './examples/wordcount-split'], {
      cwd: join(ROOT, 'go', 'src', 'ckpt'),
      env: goEnv(),
      maxBuffer: 16 * 1024 * 1024,
    });
    return GO_WORKER_BINARY;
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') {
      throw new Error('the Go worker needs Go and its packages: make system-deps installs them', { cause: err });
    }
    throw new Error(`building the Go worker failed:\n${e.stderr ?? e.message}`, { cause: err });
  }
}
