/**
 * A throwaway PKI for TLS tests, made with openssl in a directory the
 * caller removes: a CA, a server certificate for 127.0.0.1 and localhost, and a client
 * certificate.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** PEM files of a test PKI. */
export interface TestPki {
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** Writes a CA, a server certificate for 127.0.0.1 and localhost, and a client certificate named `clientName` into `dir`. */
export async function makeTestPki(dir: string, clientName = 'ckpt-test-client'): Promise<TestPki> {
  const file = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-days', '1', '-subj', '/CN=ckpt-test-ca', '-keyout', file('ca.key'), '-out', file('ca.pem')]); // prettier-ignore
  const sign = async (name: string, cn: string, ext: string): Promise<void> => {
    await writeFile(file(`${name}.ext`), ext);
    await run('openssl', ['req', ...ec, '-subj', `/CN=${cn}`, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`)]); // prettier-ignore
    await run('openssl', ['x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-days', '1', '-extfile', file(`${name}.ext`), '-out', file(`${name}.pem`)]); // prettier-ignore
  };
  await sign(
    'server',
    'ckpt-test-server',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  await sign('client', clientName, 'extendedKeyUsage=clientAuth\n');
  return {
    ca: file('ca.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server.key'),
    clientCert: file('client.pem'),
    clientKey: file('client.key'),
  };
}
