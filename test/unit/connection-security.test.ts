/**
 * The credential and TLS options of NATS and etcd: where secrets come from,
 * that no log shows them, and that bad files fail naming the option.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { nkeys } from '@nats-io/nats-core';
import { pino } from 'pino';
import { loadNatsAuth } from '../../src/bus/index.js';
import { etcdSecurityOf, natsAuthOf, resolveConfig } from '../../src/config/index.js';
import { resolveWorkerOptions } from '../../src/sdk/options.js';
import { Secret } from '../../src/core/secret.js';
import { coordinatorPermissions, renderCredsFile, userJwt } from '../../src/dev/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ckpt-security-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string): string => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
execFileSync('openssl', [
  'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
  '-subj', '/CN=test', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
], { stdio: 'ignore' }); // prettier-ignore
const cert = join(dir, 'cert.pem');
const key = join(dir, 'key.pem');

test('passwords and tokens come from the environment and never show in logs or JSON', (t) => {
  const config = resolveConfig(
    { natsUser: 'coordinator', etcdUser: 'root' },
    { CKPT_NATS_PASSWORD: 'nats-secret', CKPT_ETCD_PASSWORD: 'etcd-secret' },
  );
  t.true(config.natsPassword instanceof Secret);
  const lines: string[] = [];
  pino({}, { write: (line: string) => lines.push(line) }).info({ config }, 'config');
  const shown = [lines.join(''), JSON.stringify(config), inspect(config), String(config.natsPassword)].join('\n');
  t.false(shown.includes('nats-secret'));
  t.false(shown.includes('etcd-secret'));
  t.true(shown.includes('[redacted]'));
  t.like(natsAuthOf(config), { user: 'coordinator', pass: 'nats-secret' });
  t.deepEqual(etcdSecurityOf(config, config.etcd).auth, { username: 'root', password: 'etcd-secret' });
});

test('secrets are read from files, trimmed', (t) => {
  const config = resolveConfig(
    { natsTokenFile: file('token', 'tok\n'), etcdUser: 'root', etcdPasswordFile: file('pw', ' pw \n') },
    {},
  );
  t.is(natsAuthOf(config).token, 'tok');
  t.is(etcdSecurityOf(config, config.etcd).auth?.password, 'pw');
});

test('TLS files become the clients’ options', (t) => {
  const config = resolveConfig(
    {
      etcd: 'https://127.0.0.1:2379',
      natsTlsCaFile: cert,
      natsTlsCertFile: cert,
      natsTlsKeyFile: key,
      etcdTlsCaFile: cert,
      etcdTlsCertFile: cert,
      etcdTlsKeyFile: key,
    },
    {},
  );
  const tls = natsAuthOf(config).tls;
  t.regex(tls?.ca ?? '', /BEGIN CERTIFICATE/);
  t.regex(tls?.key ?? '', /PRIVATE KEY/);
  const credentials = etcdSecurityOf(config, config.etcd).credentials;
  t.regex(credentials?.rootCertificate.toString() ?? '', /BEGIN CERTIFICATE/);
  t.regex(credentials?.privateKey?.toString() ?? '', /PRIVATE KEY/);
});

test('bad files and conflicting options fail naming the option', (t) => {
  const fails = (input: Parameters<typeof resolveConfig>[0], pattern: RegExp, urls?: string[]): void => {
    const config = resolveConfig(input, {});
    const err = t.throws(() => {
      natsAuthOf(config);
      etcdSecurityOf(config, urls ?? config.etcd);
    });
    t.regex(err?.message ?? '', pattern);
  };
  fails({ natsCredsFile: join(dir, 'missing.creds') }, /natsCredsFile \(CKPT_NATS_CREDS_FILE\): cannot read .*ENOENT/);
  fails({ natsCredsFile: file('bad.creds', 'junk') }, /natsCredsFile .*not a NATS creds file/);
  fails({ natsTlsCaFile: file('empty.pem', '\n') }, /natsTlsCaFile .*is empty/);
  fails({ natsTlsCaFile: key }, /natsTlsCaFile .*no PEM CERTIFICATE/);
  fails({ natsTlsCertFile: cert }, /natsTlsCertFile .* and natsTlsKeyFile .* go together/);
  fails({ natsUser: 'u' }, /natsUser .* and a password/);
  fails({ natsUser: 'u', natsPassword: 'p', natsToken: 't' }, /natsUser .* and natsToken .* exclude each other/);
  fails({ etcdTlsCaFile: cert }, /etcdTlsCaFile .* needs https:\/\/ etcd URLs/);
  fails({ etcd: 'https://e:2379', etcdTlsCaFile: join(dir, 'nope.pem') }, /etcdTlsCaFile .*cannot read/);
  fails({ etcdUser: 'root' }, /etcdUser .* and a password/);
});

test('workers take the same options as natsAuth, and name them so', (t) => {
  const base = { coordinator: '127.0.0.1:1', nats: ['nats://127.0.0.1:4222'], jobId: 'j', state: {} as never };
  const config = resolveWorkerOptions({ ...base, natsAuth: { user: 'w', passwordFile: file('wpw', 'pw') } });
  t.like(config.natsAuth, { user: 'w', pass: 'pw' });
  const err = t.throws(() => resolveWorkerOptions({ ...base, natsAuth: { nkeySeedFile: join(dir, 'none') } }));
  t.regex(err?.message ?? '', /natsAuth\.nkeySeedFile: cannot read/);
  t.throws(() => loadNatsAuth({ tlsKeyFile: key }, (f) => f), { message: /tlsCertFile and tlsKeyFile go together/ });
});

test('a creds file as nsc writes it signs the server nonce; one without a usable seed fails naming the option', (t) => {
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const jwt = userJwt(account, user.getPublicKey(), 'u', coordinatorPermissions('p'));
  const creds = renderCredsFile(jwt, user.getSeed()).reveal();
  t.true(creds.endsWith('------END USER NKEY SEED------\n'));
  const { authenticator } = loadNatsAuth({ credsFile: file('u.creds', creds) }, (f) => f);
  if (typeof authenticator !== 'function') return t.fail('one authenticator');
  const auth = authenticator('nonce-1') as { jwt?: string; nkey?: string; sig?: string };
  t.like(auth, { jwt, nkey: user.getPublicKey() });
  const sig = Buffer.from(auth.sig ?? '', 'base64');
  t.true(nkeys.fromPublic(user.getPublicKey()).verify(new TextEncoder().encode('nonce-1'), sig));

  const seedless = creds.slice(0, creds.indexOf('-----BEGIN USER NKEY SEED-----'));
  const badSeed = creds.replace(new TextDecoder().decode(user.getSeed()), 'SUNOTASEED');
  for (const [name, text] of [
    ['seedless.creds', seedless],
    ['bad-seed.creds', badSeed],
  ] as const) {
    const err = t.throws(() => loadNatsAuth({ credsFile: file(name, text) }, (f) => `natsAuth.${f}`));
    t.regex(err?.message ?? '', /^MALFORMED: natsAuth\.credsFile: no usable user JWT and NKey seed in the file/, name);
    t.false(err?.message.includes(jwt), `${name}: the error does not quote the file`);
  }
});
