/**
 * The coordinator's TLS server credentials, reloaded without a restart.
 * grpc-js's `FileWatcherCertificateProvider` rereads the files; a
 * provider in front of it passes on only a certificate, key and CA that
 * parse and belong together, so that a file caught half-written, or a bad
 * one, keeps the certificate in use and logs a warning. New connections
 * get the new certificate; open ones keep theirs.
 */
import * as grpc from '@grpc/grpc-js';
import { createHash, X509Certificate } from 'node:crypto';
import { checkCertificates, checkIdentity, readCaFile, readIdentity, type TlsFile } from '../core/tls-files.js';
import type { Logger } from '../log/index.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type IdentityUpdate = grpc.experimental.IdentityCertificateUpdate;
type CaUpdate = grpc.experimental.CaCertificateUpdate;
type Listener<U> = (update: U | null) => void;

/** The TLS files of the gRPC server. */
export interface ServerTlsFiles {
  cert: TlsFile;
  key: TlsFile;
  /** With it, every client must present a certificate that this CA signed (mutual TLS). */
  clientCa: TlsFile | undefined;
  /** How often the files are read again. */
  reloadIntervalMs: number;
}

/**
 * Server credentials over `files`. Reads and checks them at once and
 * throws `CkptError('MALFORMED')` naming the file when one is bad.
 */
export function serverTlsCredentials(files: ServerTlsFiles, logger: Logger): grpc.ServerCredentials {
  const provider = new CheckedCertificateProvider(files, logger.child({ component: 'tls' }));
  return grpc.experimental.createCertificateProviderServerCredentials(
    provider,
    files.clientCa === undefined ? null : provider,
    files.clientCa !== undefined,
  );
}

function fingerprint(...parts: Buffer[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** Hands on the latest good files of a file watcher; see the module comment. */
class CheckedCertificateProvider implements CertificateProvider {
  readonly #files: ServerTlsFiles;
  readonly #log: Logger;
  readonly #watcher: CertificateProvider;
  readonly #identityListeners = new Set<Listener<IdentityUpdate>>();
  readonly #caListeners = new Set<Listener<CaUpdate>>();
  #identity: IdentityUpdate;
  #ca: CaUpdate | null;
  /** What was last warned about, per kind, so that a bad file is reported once and not at every reread. */
  readonly #warned = { identity: '', ca: '' };

  constructor(files: ServerTlsFiles, logger: Logger) {
    this.#files = files;
    this.#log = logger;
    const identity = readIdentity(files.cert, files.key);
    this.#identity = { certificate: identity.cert, privateKey: identity.key };
    this.#ca = files.clientCa === undefined ? null : { caCertificate: readCaFile(files.clientCa) };
    this.#watcher = new grpc.experimental.FileWatcherCertificateProvider({
      certificateFile: files.cert.path,
      privateKeyFile: files.key.path,
      caCertificateFile: files.clientCa?.path,
      refreshIntervalMs: files.reloadIntervalMs,
    });
    this.#log.info(
      { cert: files.cert.path, clientCa: files.clientCa?.path, serial: serial(identity.cert) },
      'TLS certificate loaded',
    );
  }

  addIdentityCertificateListener(listener: Listener<IdentityUpdate>): void {
    this.#watchIfFirst();
    this.#identityListeners.add(listener);
    process.nextTick(listener, this.#identity);
  }

  removeIdentityCertificateListener(listener: Listener<IdentityUpdate>): void {
    this.#identityListeners.delete(listener);
    this.#unwatchIfLast();
  }

  addCaCertificateListener(listener: Listener<CaUpdate>): void {
    this.#watchIfFirst();
    this.#caListeners.add(listener);
    process.nextTick(listener, this.#ca);
  }

  removeCaCertificateListener(listener: Listener<CaUpdate>): void {
    this.#caListeners.delete(listener);
    this.#unwatchIfLast();
  }

  readonly #onIdentity = (update: IdentityUpdate | null): void => {
    const { cert, key } = this.#files;
    if (update === null) return this.#warn('identity', `${cert.path} or ${key.path} cannot be read`);
    const { certificate, privateKey } = update;
    if (fingerprint(certificate, privateKey) === fingerprint(this.#identity.certificate, this.#identity.privateKey)) {
      this.#warned.identity = '';
      return;
    }
    try {
      checkIdentity(cert, key, { cert: certificate, key: privateKey });
    } catch (err) {
      return this.#warn('identity', (err as Error).message);
    }
    this.#identity = update;
    this.#warned.identity = '';
    this.#log.info({ cert: cert.path, serial: serial(certificate) }, 'TLS certificate reloaded');
    for (const listener of this.#identityListeners) listener(update);
  };

  readonly #onCa = (update: CaUpdate | null): void => {
    const file = this.#files.clientCa;
    if (file === undefined) return;
    if (update === null) return this.#warn('ca', `${file.path} cannot be read`);
    if (this.#ca !== null && update.caCertificate.equals(this.#ca.caCertificate)) {
      this.#warned.ca = '';
      return;
    }
    try {
      checkCertificates(file, update.caCertificate);
    } catch (err) {
      return this.#warn('ca', (err as Error).message);
    }
    this.#ca = update;
    this.#warned.ca = '';
    this.#log.info({ clientCa: file.path }, 'TLS client CA reloaded');
    for (const listener of this.#caListeners) listener(update);
  };

  #warn(kind: 'identity' | 'ca', message: string): void {
    if (this.#warned[kind] === message) return;
    this.#warned[kind] = message;
    this.#log.warn({ kind }, `TLS files not reloaded, the ones in use stay: ${message}`);
  }

  #watchIfFirst(): void {
    if (this.#identityListeners.size + this.#caListeners.size > 0) return;
    this.#watcher.addIdentityCertificateListener(this.#onIdentity);
    if (this.#files.clientCa !== undefined) this.#watcher.addCaCertificateListener(this.#onCa);
  }

  #unwatchIfLast(): void {
    if (this.#identityListeners.size + this.#caListeners.size > 0) return;
    this.#watcher.removeIdentityCertificateListener(this.#onIdentity);
    this.#watcher.removeCaCertificateListener(this.#onCa);
  }
}

/** The serial number of the first certificate of a chain already checked. */
function serial(pem: Buffer): string | undefined {
  try {
    return new X509Certificate(pem).serialNumber;
  } catch {
    return undefined;
  }
}
