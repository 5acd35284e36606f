/**
 * Reading and checking the PEM files of TLS, for the coordinator's server
 * and the clients alike. Every error names the file and the option it came
 * from, and never quotes a file's contents: a private key must not reach a
 * log or a terminal.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { CkptError } from './errors.js';

/** A certificate chain and its private key, as PEM, checked to belong together. */
export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
}

/** The file of a TLS option: the option as the user knows it, and the path. */
export interface TlsFile {
  option: string;
  path: string;
}

function problem(file: TlsFile, what: string): CkptError {
  return new CkptError('MALFORMED', `${file.option}: ${file.path} ${what}`);
}

/** The bytes of `file`; refuses naming the file when it cannot be read or is empty. */
export function readTlsFile(file: TlsFile): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw problem(file, `cannot be read (${code})`);
  }
  if (bytes.length === 0) throw problem(file, 'is empty');
  return bytes;
}

/** Checks that `pem` holds at least one PEM certificate, each parseable; returns the first. */
export function checkCertificates(file: TlsFile, pem: Buffer): X509Certificate {
  const blocks = pem.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (blocks === null) throw problem(file, 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  const parsed = blocks.map((block) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw problem(file, 'holds a PEM certificate that does not parse');
    }
  });
  return parsed[0] as X509Certificate;
}

/** Checks that `pem` is a PEM private key. */
export function checkPrivateKey(file: TlsFile, pem: Buffer): KeyObject {
  if (!pem.toString('latin1').includes('-----BEGIN')) throw problem(file, 'is not a PEM private key');
  try {
    return createPrivateKey(pem);
  } catch {
    // The library's message may quote the key's bytes; this one does not.
    throw problem(file, 'is not a PEM private key, or one that needs a passphrase');
  }
}

/** Reads and checks a CA file: PEM certificates. */
export function readCaFile(file: TlsFile): Buffer {
  const pem = readTlsFile(file);
  checkCertificates(file, pem);
  return pem;
}

/** Checks a certificate chain and a private key, and that the key is the certificate's. */
export function checkIdentity(certFile: TlsFile, keyFile: TlsFile, identity: TlsIdentity): void {
  const cert = checkCertificates(certFile, identity.cert);
  const key = checkPrivateKey(keyFile, identity.key);
  if (!cert.checkPrivateKey(key)) {
    throw new CkptError(
      'MALFORMED',
      `${keyFile.option}: ${keyFile.path} is not the private key of the certificate in ${certFile.path}`,
    );
  }
}

/** Reads a certificate chain and its key, checked as `checkIdentity` does. */
export function readIdentity(certFile: TlsFile, keyFile: TlsFile): TlsIdentity {
  const identity = { cert: readTlsFile(certFile), key: readTlsFile(keyFile) };
  checkIdentity(certFile, keyFile, identity);
  return identity;
}
