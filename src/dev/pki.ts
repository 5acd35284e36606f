/**
 * A throwaway PKI made with `openssl` in a directory the caller owns and
 * removes: a CA, and server and client certificates it signs. Tests, the
 * fault suite and `make cluster` take their certificates from here. Keys are
 * P-256, certificates are valid for one day.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The names every local server certificate is valid for. */
export const LOOPBACK_NAMES: readonly string[] = ['127.0.0.1', 'localhost'];

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A certificate and its private key, PEM files. */
export interface CertFiles {
  cert: string;
  key: string;
}

/** What a certificate is for: a server's also serves as a client's (peers, a standby calling the leader). */
export type CertUsage = 'server' | 'client';

/** A CA that signs certificates into its directory. */
export interface LocalCa extends CertFiles {
  /** The directory the CA and what it signs live in. */
  readonly dir: string;
  /**
   * Signs a certificate with common name `commonName` into `<file>.pem` and
   * `<file>.key`. A server certificate is valid for `names` (default
   * `LOOPBACK_NAMES`) and for client authentication too.
   */
  issue(file: string, commonName: string, usage: CertUsage, names?: readonly string[]): Promise<CertFiles>;
}

/** PEM files of a test PKI: a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate. */
export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Makes a self-signed CA named `commonName` in `dir`. Rejects when openssl fails, with its message. */
export async function createLocalCa(dir: string, commonName = 'ckpt-local-ca'): Promise<LocalCa> {
  const ca = { cert: join(dir, 'ca.pem'), key: join(dir, 'ca.key') };
  await openssl(['req', '-x509', ...EC_KEY, '-days', '1', '-subj', subject(commonName), '-keyout', ca.key, '-out', ca.cert]); // prettier-ignore
  let serial = 0x1000;
  return {
    ...ca,
    dir,
    async issue(file, commonName, usage, names = LOOPBACK_NAMES) {
      if (!/^[A-Za-z0-9._-]{1,64}$/.test(file)) throw new Error(`certificate file name ${JSON.stringify(file)} is not [A-Za-z0-9._-]{1,64}`); // prettier-ignore
      const out = { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
      const csr = join(dir, `${file}.csr`);
      const ext = join(dir, `${file}.ext`);
      await writeFile(ext, extensions(usage, names));
      serial += 1;
      await openssl(['req', ...EC_KEY, '-subj', subject(commonName), '-keyout', out.key, '-out', csr]);
      await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(serial), '-days', '1', '-extfile', ext, '-out', out.cert]); // prettier-ignore
      return out;
    },
  };
}

/** Writes a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate named `clientName` into `dir`. */
export async function makeTestPki(dir: string, clientName = 'ckpt-test-client'): Promise<TestPki> {
  const ca = await createLocalCa(dir, 'ckpt-test-ca');
  const server = await ca.issue('server', 'ckpt-test-server', 'server');
  const client = await ca.issue('client', clientName, 'client');
  return {
    ca: ca.cert,
    serverCert: server.cert,
    serverKey: server.key,
    clientCert: client.cert,
    clientKey: client.key,
  };
}

/**
 * Writes `files` as a PKCS#12 bundle to `out`, protected by `password`, for
 * a browser to present as its client certificate.
 */
export async function exportPkcs12(files: CertFiles, caFile: string, out: string, password: string): Promise<void> {
  await openssl(['pkcs12', '-export', '-in', files.cert, '-inkey', files.key, '-certfile', caFile, '-out', out, '-passout', `pass:${password}`]); // prettier-ignore
}

/** Writes a new RSA key pair to `<base>.key` and `<base>.pub` (PEM), e.g. to sign tokens with. */
export async function createRsaKey(base: string): Promise<{ privateKey: string; publicKey: string }> {
  const out = { privateKey: `${base}.key`, publicKey: `${base}.pub` };
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', out.privateKey]);
  await openssl(['pkey', '-in', out.privateKey, '-pubout', '-out', out.publicKey]);
  return out;
}

function extensions(usage: CertUsage, names: readonly string[]): string {
  if (usage === 'client') return 'extendedKeyUsage=clientAuth\n';
  if (names.length === 0) throw new Error('a server certificate needs at least one name');
  const alt = names.map((n) => (/^[\d.]+$/.test(n) || n.includes(':') ? `IP:${n}` : `DNS:${n}`)).join(',');
  return `subjectAltName=${alt}\nextendedKeyUsage=serverAuth,clientAuth\n`;
}

function subject(commonName: string): string {
  if (!/^[A-Za-z0-9 ._*-]{1,64}$/.test(commonName)) {
    throw new Error(`common name ${JSON.stringify(commonName)} is not 1-64 characters of [A-Za-z0-9 ._*-]`);
  }
  return `/CN=${commonName}`;
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args);
  } catch (err) {
    const { stderr } = err as { stderr?: string | Buffer };
    const said = stderr === undefined ? '' : stderr.toString().trim();
    throw new Error(`openssl ${args[0]} failed: ${said || (err as Error).message}`, { cause: err });
  }
}
