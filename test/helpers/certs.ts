/**
 * Throwaway certificates for TLS tests, made with `openssl` in a temporary
 * directory that is removed when the test ends: a CA, and server and
 * client certificates it signs, each with its own serial number.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';

const run = promisify(execFile);

/** The files of a certificate and its key. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** A CA that issues certificates into its directory. */
export interface TestCa extends CertFiles {
  /** A certificate for `name`, valid for the `names` (DNS names or IP addresses) and signed by this CA. */
  issue(name: string, names: readonly string[]): Promise<CertFiles & { serial: string }>;
}

/** A directory for certificates, removed at the end of `t`. */
export async function certDir(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-certs-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
let serials = 0x1000;

/** A new self-signed CA named `name` in `dir`. */
export async function makeCa(dir: string, name: string): Promise<TestCa> {
  const ca = { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
  await run('openssl', [
    'req',
    '-x509',
    ...EC_KEY,
    '-keyout',
    ca.key,
    '-out',
    ca.cert,
    '-days',
    '1',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return {
    ...ca,
    async issue(leaf, names) {
      const files = { cert: join(dir, `${leaf}.pem`), key: join(dir, `${leaf}.key`) };
      const csr = join(dir, `${leaf}.csr`);
      const ext = join(dir, `${leaf}.ext`);
      const alt = names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
      await writeFile(ext, `subjectAltName=${alt}\nextendedKeyUsage=serverAuth,clientAuth\n`);
      await run('openssl', ['req', ...EC_KEY, '-keyout', files.key, '-out', csr, '-subj', `/CN=${leaf}`]);
      serials += 1;
      const serial = serials.toString(16).toUpperCase();
      await run('openssl', [
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        ca.cert,
        '-CAkey',
        ca.key,
        '-set_serial',
        `0x${serial}`,
        '-days',
        '1',
        '-extfile',
        ext,
        '-out',
        files.cert,
      ]);
      return { ...files, serial };
    },
  };
}
