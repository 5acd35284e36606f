/**
 * The access policy's parser and its decisions, without a server: every
 * malformed policy is refused saying where, tokens come from files,
 * variables or digests, and a caller gets what its principals allow.
 */
import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { CkptError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/log/index.js';
import { AccessControl, type CallCredentials } from '../../src/server/access-control.js';
import { globPattern, loadAccessPolicy, parseAccessPolicy, tokenDigest } from '../../src/server/access-policy.js';

const OPERATOR_TOKEN = 'operator-token-0123456789';
const READER_TOKEN = 'reader-token-0123456789ab';
const sources = { env: { READER_TOKEN }, baseDir: '/nonexistent' };

function refusedPolicy(t: import('ava').ExecutionContext, policy: unknown, pattern: RegExp): void {
  const json = typeof policy === 'string' ? policy : JSON.stringify(policy);
  const err = t.throws(() => parseAccessPolicy(json, sources));
  t.true(err instanceof CkptError);
  t.is((err as CkptError).reason, 'MALFORMED');
  t.regex(err?.message ?? '', pattern);
}

const reader = { name: 'r', roles: ['reader'], token: { env: 'READER_TOKEN' } };

test('a malformed policy is refused, saying what and where', (t) => {
  refusedPolicy(t, '{', /not JSON/);
  refusedPolicy(t, [], /the file: must be an object/);
  refusedPolicy(t, { principal: [] }, /unknown key "principal"/);
  refusedPolicy(t, { principals: {} }, /principals: must be a list/);
  refusedPolicy(t, { principals: [{ ...reader, role: ['reader'] }] }, /unknown key "role"/);
  refusedPolicy(t, { principals: [{ ...reader, roles: [] }] }, /principal "r"\.roles: must be a non-empty list/);
  refusedPolicy(t, { principals: [{ ...reader, roles: ['root'] }] }, /"root" is not a role; roles: reader, worker, operator, admin/); // prettier-ignore
  refusedPolicy(t, { principals: [{ ...reader, jobs: ['a.b'] }] }, /"a\.b" must be 1-128 characters/);
  refusedPolicy(t, { principals: [{ ...reader, jobs: [] }] }, /non-empty list of job patterns/);
  refusedPolicy(t, { principals: [{ ...reader, name: 'név' }] }, /must be printable ASCII/);
  refusedPolicy(t, { principals: [reader, reader] }, /principal "r": the name is given twice/);
  refusedPolicy(t, { principals: [{ name: 'x', roles: ['reader'] }] }, /give exactly one of token, certificate/);
  refusedPolicy(
    t,
    { principals: [{ ...reader, certificate: { commonName: 'x' } }] },
    /give exactly one of token, certificate/,
  );
  refusedPolicy(t, { principals: [{ ...reader, token: { env: 'MISSING' } }] }, /MISSING is not set/);
  refusedPolicy(t, { principals: [{ ...reader, token: { sha256: 'abc' } }] }, /64 hexadecimal digits/);
  refusedPolicy(t, { principals: [{ ...reader, token: { file: 'nope' } }] }, /cannot read \/nonexistent\/nope/);
  refusedPolicy(t, { principals: [{ ...reader, token: { file: 'a', env: 'b' } }] }, /exactly one of file, env, sha256/);
  refusedPolicy(
    t,
    { principals: [{ ...reader, token: undefined, certificate: { serial: '1' } }] },
    /unknown key "serial"/,
  );
});

test('a short or spaced token is refused: a guessable secret is a configuration error', (t) => {
  const env = { SHORT: 'abc', SPACED: 'a token with spaces in it' };
  for (const name of Object.keys(env)) {
    const json = JSON.stringify({ principals: [{ ...reader, token: { env: name } }] });
    t.throws(() => parseAccessPolicy(json, { env, baseDir: '/' }), { message: /shorter than 16|without spaces/ });
  }
});

test('token files are read relative to the policy, trimmed; a digest stands for its token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-policy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'operator'), `${OPERATOR_TOKEN}\n`);
  const digest = tokenDigest(READER_TOKEN).toString('hex');
  await writeFile(
    join(dir, 'policy.json'),
    JSON.stringify({
      principals: [
        { name: 'ops', roles: ['operator'], token: { file: 'operator' } },
        { name: 'dash', roles: ['reader'], jobs: ['team-a-*'], token: { sha256: digest } },
      ],
    }),
  );
  const policy = loadAccessPolicy(join(dir, 'policy.json'), {});
  t.deepEqual(
    policy.principals.map((p) => [p.name, [...p.actions].sort(), p.allJobs]),
    [
      ['ops', ['operate', 'read'], true],
      ['dash', ['read'], false],
    ],
  );
  const ops = policy.principals[0]?.credential;
  t.true(ops?.kind === 'token' && ops.digest.equals(tokenDigest(OPERATOR_TOKEN)));
  t.throws(() => loadAccessPolicy(join(dir, 'missing.json')), { message: /cannot read .*missing\.json/ });
});

test('job patterns match whole ids, * standing for any characters and nothing else special', (t) => {
  t.true(globPattern('team-a-*').test('team-a-orders'));
  t.false(globPattern('team-a-*').test('xteam-a-orders'));
  t.true(globPattern('*').test(''));
  t.false(globPattern('a.b').test('axb'));
  t.true(globPattern('spiffe://ckpt/worker/*').test('spiffe://ckpt/worker/wordcount'));
});

function call(token?: string, cert?: Partial<PeerCertificate>): CallCredentials {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return { metadata, getAuthContext: () => ({ sslPeerCertificate: cert as PeerCertificate }) };
}

async function control(t: import('ava').ExecutionContext, principals: unknown[], sharedToken?: string) {
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-policy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({ principals }));
  const access = new AccessControl({ policyFile: file, sharedToken, logger: silentLogger(), env: { READER_TOKEN } });
  t.teardown(() => access.close());
  return { access, file };
}

test('callers are identified by token or certificate, and get the union of what they match', async (t) => {
  const { access } = await control(
    t,
    [
      reader,
      { name: 'wc', roles: ['worker'], jobs: ['wordcount'], certificate: { commonName: 'worker-wordcount' } },
      { name: 'spiffe', roles: ['worker'], jobs: ['other'], certificate: { uri: 'spiffe://ckpt/w/*' } },
      { name: 'dns', roles: ['reader'], jobs: ['dns-*'], certificate: { dnsName: '*.workers.ckpt' } },
    ],
    'shared-token-0123456789',
  );
  t.is(access.mode, 'policy');
  t.like(access.identify(call('shared-token-0123456789')), { all: true });
  const cert = {
    subject: { CN: 'worker-wordcount' } as PeerCertificate['subject'],
    subjectaltname: 'DNS:a.workers.ckpt, URI:spiffe://ckpt/w/1, IP Address:127.0.0.1',
  };
  const both = access.identify(call(READER_TOKEN, cert));
  t.deepEqual(both.all ? [] : both.principals.map((p) => p.name), ['r', 'wc', 'spiffe', 'dns']);
  t.true(access.allows(both, 'work', 'wordcount'));
  t.true(access.allows(both, 'work', 'other'));
  t.false(access.allows(both, 'work', 'third'));
  t.false(access.allows(both, 'operate', 'wordcount'));

  const unauth = (c: CallCredentials, message: RegExp): void => {
    const err = t.throws(() => access.identify(c));
    t.like(err, { reason: 'UNAUTHENTICATED' });
    t.regex(err?.message ?? '', message);
  };
  unauth(call(), /neither a bearer token nor a client certificate/);
  unauth(call('wrong-token-0123456789'), /bearer token is not valid/);
  unauth(call('wrong-token-0123456789', cert), /bearer token is not valid/);
  unauth(call(undefined, { subject: { CN: 'stranger' } }), /CN="stranger" matches no principal/); // prettier-ignore
});

test('a refusal names the principal, what it holds and what the call needs', async (t) => {
  const { access } = await control(t, [
    { ...reader, jobs: ['team-a-*'] },
    { name: 'ops', roles: ['operator'], jobs: ['team-a-orders'], certificate: { commonName: 'ops' } },
  ]);
  const r = access.identify(call(READER_TOKEN));
  access.require(r, 'read', 'team-a-x');
  t.throws(() => access.require(r, 'read', 'team-b-x'), {
    message: 'PERMISSION_DENIED: "r" (reader on team-a-*) may not read job "team-b-x": that needs one of the roles reader, worker, operator, admin on a pattern matching it', // prettier-ignore
  });
  t.throws(() => access.require(r, 'operate', 'team-a-x'), { message: /may not operate job "team-a-x": that needs one of the roles operator, admin/ }); // prettier-ignore
  const ops = access.identify(call(undefined, { subject: { CN: 'ops' } }));
  t.throws(() => access.require(ops, 'operate', undefined), { message: /may not operate every job: .* on the job pattern "\*"/ }); // prettier-ignore
  t.throws(() => access.require(ops, 'work', 'team-a-orders'), { message: /may not run the tasks of job/ });
  t.throws(() => access.requireSome(ops, 'work'), { message: /may not run the tasks of any job/ });
  access.requireSome(r, 'read');
});

test('without a policy: a shared token admits its holder to everything; with neither, anyone may', (t) => {
  const shared = new AccessControl({ sharedToken: 'tok', logger: silentLogger() });
  t.is(shared.mode, 'shared token');
  t.like(shared.identify(call('tok')), { all: true });
  t.throws(() => shared.identify(call()), { message: 'UNAUTHENTICATED: the call carries no authorization metadata' });
  t.throws(() => shared.identify(call('nope')), { message: 'UNAUTHENTICATED: the bearer token is not valid' });
  const open = new AccessControl({ logger: silentLogger() });
  t.is(open.mode, 'open');
  t.like(open.identify(call()), { all: true });
});

test('refusals and a policy file that does not load are reported to the observer', async (t) => {
  const seen: string[] = [];
  const observer = {
    refused: (reason: string, principal: string | undefined) => seen.push(`${reason} ${principal ?? '-'}`),
    stale: (stale: boolean) => seen.push(`stale ${String(stale)}`),
  };
  const dir = await mkdtemp(join(tmpdir(), 'ckpt-policy-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'policy.json');
  await writeFile(file, JSON.stringify({ principals: [reader] }));
  const access = new AccessControl({ policyFile: file, logger: silentLogger(), env: { READER_TOKEN }, observer });
  t.teardown(() => access.close());
  t.throws(() => access.identify(call('wrong-token-0123456789')));
  t.throws(() => access.require(access.identify(call(READER_TOKEN)), 'operate', 'j'));
  t.throws(() => access.requireSome(access.identify(call(READER_TOKEN)), 'work'));
  await writeFile(file, '[');
  access.reload();
  await writeFile(file, JSON.stringify({ principals: [reader] }));
  access.reload();
  t.deepEqual(seen, ['UNAUTHENTICATED -', 'PERMISSION_DENIED r', 'PERMISSION_DENIED r', 'stale true', 'stale false']);
});

test('a changed policy applies after a reload; one that does not load keeps the last good one', async (t) => {
  const { access, file } = await control(t, [reader]);
  const r = (): ReturnType<AccessControl['identify']> => access.identify(call(READER_TOKEN));
  t.false(access.allows(r(), 'operate', 'job'));
  await writeFile(file, JSON.stringify({ principals: [{ ...reader, roles: ['operator'] }] }));
  access.reload();
  t.true(access.allows(r(), 'operate', 'job'));
  await writeFile(file, '{"principals": [');
  access.reload();
  t.true(access.allows(r(), 'operate', 'job'), 'the half-written file did not replace the policy');
});
