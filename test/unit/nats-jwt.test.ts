/**
 * NATS JWTs as `src/dev/nats-jwt.ts` issues them: the encoding (header,
 * claims, signature, jti) checked against an independent reading, the
 * permissions of each user equal to those of the `authorization` block,
 * and no seed outside the creds files.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { inspect } from 'node:util';
import { nkeys } from '@nats-io/nats-core';
import {
  accountJwt,
  coordinatorPermissions,
  decodeNatsJwt,
  encodeNatsJwt,
  issueNatsJwts,
  userJwt,
  workerPermissions,
  type NatsJwtClaims,
} from '../../src/dev/index.js';

const PREFIX = 'jwt';
const part = (token: string, i: number): string => token.split('.')[i] ?? '';
const json = (text: string): Record<string, unknown> =>
  JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Record<string, unknown>;
const signed = (token: string): Uint8Array => new TextEncoder().encode(`${part(token, 0)}.${part(token, 1)}`);

/** RFC 4648 base32 without padding, written out bit by bit. */
function base32(bytes: Uint8Array): string {
  const bits = [...bytes].map((b) => b.toString(2).padStart(8, '0')).join('');
  const groups = bits.match(/.{1,5}/g) ?? [];
  return groups.map((g) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[parseInt(g.padEnd(5, '0'), 2)]).join('');
}

/** The user JWT and the seed of a creds file. */
function readCreds(text: string): { jwt: string; seed: string } {
  const jwt = /-----BEGIN NATS USER JWT-----\n(\S+)\n------END NATS USER JWT------/.exec(text)?.[1];
  const seed = /-----BEGIN USER NKEY SEED-----\n(\S+)\n------END USER NKEY SEED------/.exec(text)?.[1];
  if (jwt === undefined || seed === undefined) throw new Error(`not a creds file:\n${text.length} characters`);
  return { jwt, seed };
}

test('a JWT is header.claims.signature, signed by its issuer, with a jti of its claims', (t) => {
  const issuer = nkeys.createAccount();
  const user = nkeys.createUser().getPublicKey();
  const nats = { pub: { allow: ['a.>'] }, sub: {}, subs: -1, type: 'user' as const, version: 2 as const };
  const token = encodeNatsJwt(issuer, { sub: user, name: 'u', nats }, 1_700_000_000);

  t.deepEqual(json(part(token, 0)), { typ: 'JWT', alg: 'ed25519-nkey' });
  const claims = json(part(token, 1));
  t.like(claims, { iat: 1_700_000_000, iss: issuer.getPublicKey(), sub: user, name: 'u', nats });
  const { jti, ...rest } = claims;
  t.is(jti, base32(createHash('sha512-256').update(JSON.stringify(rest)).digest()));
  t.regex(String(jti), /^[A-Z2-7]{52}$/);
  const signature = Buffer.from(part(token, 2), 'base64url');
  t.true(nkeys.fromPublic(issuer.getPublicKey()).verify(signed(token), signature));
  t.false(nkeys.fromPublic(nkeys.createAccount().getPublicKey()).verify(signed(token), signature));

  const decoded = decodeNatsJwt(token);
  t.deepEqual(decoded.claims, claims as unknown as NatsJwtClaims);
});

test('decoding refuses a changed claim, a foreign signature and what is no JWT', (t) => {
  const issuer = nkeys.createAccount();
  const token = userJwt(issuer, nkeys.createUser().getPublicKey(), 'u', workerPermissions(PREFIX, { jobId: 'J' }));
  const claims = json(part(token, 1));
  const widened = { ...claims, nats: { ...(claims['nats'] as object), pub: { allow: ['>'] } } };
  const tampered = [part(token, 0), Buffer.from(JSON.stringify(widened)).toString('base64url'), part(token, 2)];
  t.throws(() => decodeNatsJwt(tampered.join('.')), { message: /MALFORMED: the JWT's signature is not its issuer's/ });

  const other = userJwt(nkeys.createAccount(), nkeys.createUser().getPublicKey(), 'u', coordinatorPermissions(PREFIX));
  const foreign = [part(token, 0), part(token, 1), part(other, 2)].join('.');
  t.throws(() => decodeNatsJwt(foreign), { message: /MALFORMED: the JWT's signature/ });
  t.throws(() => decodeNatsJwt('a.b'), { message: /MALFORMED: a JWT has three parts/ });
  t.throws(() => decodeNatsJwt(`${part(token, 0)}.!!.${part(token, 2)}`), { message: /MALFORMED: the JWT's claims/ });
});

test('an account JWT enables JetStream without bounds, or leaves it off', (t) => {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount().getPublicKey();
  const withJs = decodeNatsJwt(accountJwt(operator, account, 'a')).claims;
  t.like(withJs, { iss: operator.getPublicKey(), sub: account, nats: { type: 'account', version: 2 } });
  t.like(withJs.nats['limits'], { mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1, conn: -1, subs: -1 });
  const without = decodeNatsJwt(accountJwt(operator, account, 'a', false)).claims.nats['limits'] as object;
  t.false('mem_storage' in without || 'disk_storage' in without);
});

test('issued users hold the permissions of the authorization block, and only creds files hold seeds', (t) => {
  const jobs = [{ jobId: 'J', stateBucket: 'state-J' }, { jobId: 'K' }];
  const d = issueNatsJwts({ subjectPrefix: PREFIX, jobs });
  const expected = new Map([
    ['coordinator', coordinatorPermissions(PREFIX)],
    ['J', workerPermissions(PREFIX, jobs[0] ?? { jobId: '' })],
    ['K', workerPermissions(PREFIX, jobs[1] ?? { jobId: '' })],
  ]);
  const creds = new Map([['coordinator', d.coordinatorCreds], ...d.workerCreds]);
  t.deepEqual([...creds.keys()], [...expected.keys()]);
  for (const [who, file] of creds) {
    const { jwt, seed } = readCreds(file.reveal());
    const { claims } = decodeNatsJwt(jwt);
    const permissions = expected.get(who);
    t.is(claims.iss, d.account, `${who}: issued by the ckpt account`);
    t.is(claims.sub, nkeys.fromSeed(new TextEncoder().encode(seed)).getPublicKey(), `${who}: the seed's user`);
    t.deepEqual(claims.nats['pub'], sideOf(permissions?.publish), `${who}: publish`);
    t.deepEqual(claims.nats['sub'], sideOf(permissions?.subscribe), `${who}: subscribe`);
    t.like(claims.nats, { type: 'user', version: 2, subs: -1, data: -1, payload: -1 });
    t.false(inspect(d).includes(seed) || JSON.stringify(d).includes(seed), `${who}: the seed is not shown`);
  }
  t.false(/\bS[OAU][A-Z2-7]{50,}/.test(d.serverConfig), 'no seed in the server configuration');
  t.regex(d.serverConfig, new RegExp(`^operator: "[^"]+"\\nsystem_account: "A[A-Z2-7]+"\\nresolver: MEMORY\\n`));
  t.true(d.serverConfig.includes(`"${d.account}": "`), 'the ckpt account is preloaded');
  t.throws(() => issueNatsJwts({ subjectPrefix: PREFIX, jobs: [{ jobId: 'J' }, { jobId: 'J' }] }), {
    message: /MALFORMED: job J is listed twice/,
  });
});

function sideOf(rules: { allow: string[]; deny: string[] } | undefined): Record<string, string[]> {
  if (rules === undefined) throw new Error('no permissions expected');
  return { allow: rules.allow, ...(rules.deny.length > 0 ? { deny: rules.deny } : {}) };
}
