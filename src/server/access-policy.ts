/**
 * The access policy of the gRPC API: who may call what, for which jobs.
 *
 * A JSON file names principals. Each is known by one credential, a bearer
 * token or a client certificate (mutual TLS), and holds roles on the jobs
 * its patterns match:
 *
 *     { "principals": [
 *       { "name": "operators", "roles": ["operator"], "jobs": ["*"],
 *         "token": { "file": "/etc/ckpt/tokens/operator" } },
 *       { "name": "wordcount-workers", "roles": ["worker"], "jobs": ["wordcount"],
 *         "certificate": { "commonName": "worker-wordcount" } } ] }
 *
 * Roles: `reader` queries; `worker` attaches, acknowledges and declines
 * (and reads); `operator` submits, cancels, restores, triggers, takes
 * savepoints and collects garbage (and reads); `admin` does all three.
 * Job patterns are job ids where `*` stands for any characters; without
 * `jobs`, every job. A token is given by `file` (read at load, surrounding
 * whitespace dropped; a relative path is relative to the policy file),
 * `env` (an environment variable) or `sha256` (its hex digest, so that the
 * policy itself holds no secret). A certificate is matched by
 * `commonName`, a `dnsName` or a `uri` of its subject alternative names
 * (a SPIFFE id, say), the same `*` pattern allowed.
 *
 * A policy is checked whole: an unknown key, role or field, a token file
 * that cannot be read, or two principals of one name refuse the file.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { CkptError } from '../core/errors.js';
import { echo } from '../core/validate.js';

/** What a call does; each method of the API needs one of these. */
export type Action = 'read' | 'work' | 'operate';

/** Roles a principal can hold, and the actions each allows. */
export const ROLES = {
  reader: ['read'],
  worker: ['read', 'work'],
  operator: ['read', 'operate'],
  admin: ['read', 'work', 'operate'],
} as const satisfies Record<string, readonly Action[]>;

export type Role = keyof typeof ROLES;

/** How a principal proves who it is. */
export type Credential =
  { kind: 'token'; digest: Buffer } | { kind: 'certificate'; field: CertificateField; pattern: RegExp; text: string };

/** The certificate fields a principal can be matched on. */
export type CertificateField = 'commonName' | 'dnsName' | 'uri';

/** One principal of a policy, checked and compiled. */
export interface Principal {
  readonly name: string;
  readonly roles: readonly Role[];
  readonly actions: ReadonlySet<Action>;
  /** The job patterns as written, for messages. */
  readonly jobs: readonly string[];
  /** Whether a pattern is `*` alone: the principal's roles hold for every job, also jobs yet to come. */
  readonly allJobs: boolean;
  readonly jobPatterns: readonly RegExp[];
  readonly credential: Credential;
}

/** A checked policy. */
export interface AccessPolicy {
  readonly principals: readonly Principal[];
}

/** Where a policy's secrets come from. */
export interface PolicySources {
  /** Environment of `token.env`. */
  env: NodeJS.ProcessEnv;
  /** Directory that relative token file paths start from. */
  baseDir: string;
}

/** The SHA-256 digest a token is compared by. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Longest name, pattern or token accepted. */
const MAX_TEXT = 256;
/** Most principals in one policy. */
const MAX_PRINCIPALS = 10_000;
/** Characters of a job pattern: those of a job id, and `*`. */
const JOB_PATTERN = /^[A-Za-z0-9_*-]{1,128}$/;

function refuse(where: string, what: string): never {
  throw new CkptError('MALFORMED', `access policy: ${where}: ${what}`);
}

/** A regular expression matching the whole of a text where `*` stands for any characters. */
export function globPattern(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, 's');
}

function record(value: unknown, where: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) refuse(where, 'must be an object');
  const entries = value as Record<string, unknown>;
  for (const key of Object.keys(entries)) {
    if (!keys.includes(key)) refuse(where, `unknown key ${echo(key)}; known keys: ${keys.join(', ')}`);
  }
  return entries;
}

function text(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') refuse(where, 'must be a non-empty string');
  if (value.length > MAX_TEXT) refuse(where, `must be at most ${MAX_TEXT} characters`);
  if (!/^[\x20-\x7e]+$/.test(value)) refuse(where, `${echo(value)} must be printable ASCII`);
  return value;
}

function onlyOne(entries: Record<string, unknown>, where: string, keys: readonly string[]): string {
  const given = keys.filter((k) => entries[k] !== undefined);
  if (given.length !== 1) refuse(where, `give exactly one of ${keys.join(', ')}`);
  return given[0] as string;
}

function readToken(spec: Record<string, unknown>, where: string, sources: PolicySources): Buffer {
  const kind = onlyOne(spec, where, ['file', 'env', 'sha256']);
  const ref = text(spec[kind], `${where}.${kind}`);
  if (kind === 'sha256') {
    if (!/^[0-9a-fA-F]{64}$/.test(ref)) refuse(`${where}.sha256`, 'must be 64 hexadecimal digits');
    return Buffer.from(ref, 'hex');
  }
  let token: string | undefined;
  if (kind === 'env') {
    token = sources.env[ref];
    if (token === undefined) refuse(`${where}.env`, `the environment variable ${ref} is not set`);
  } else {
    const path = resolve(sources.baseDir, ref);
    try {
      token = readFileSync(path, 'utf8');
    } catch (err) {
      refuse(`${where}.file`, `cannot read ${path}: ${(err as Error).message}`);
    }
  }
  token = token.trim();
  if (token.length < 16) refuse(`${where}.${kind}`, 'the token is shorter than 16 characters');
  if (!/^[\x21-\x7e]+$/.test(token)) refuse(`${where}.${kind}`, 'the token must be printable ASCII without spaces');
  return tokenDigest(token);
}

function readCertificate(spec: Record<string, unknown>, where: string): Credential {
  const field = onlyOne(spec, where, ['commonName', 'dnsName', 'uri']) as CertificateField;
  const value = text(spec[field], `${where}.${field}`);
  return { kind: 'certificate', field, pattern: globPattern(value), text: value };
}

function readPrincipal(value: unknown, where: string, sources: PolicySources): Principal {
  const entries = record(value, where, ['name', 'roles', 'jobs', 'token', 'certificate']);
  const name = text(entries.name, `${where}.name`);
  const at = `principal ${echo(name)}`;
  if (!Array.isArray(entries.roles) || entries.roles.length === 0) refuse(`${at}.roles`, 'must be a non-empty list');
  const roles = entries.roles.map((r: unknown) => {
    if (typeof r !== 'string' || !(r in ROLES)) {
      refuse(`${at}.roles`, `${echo(r)} is not a role; roles: ${Object.keys(ROLES).join(', ')}`);
    }
    return r as Role;
  });
  const jobs = entries.jobs === undefined ? ['*'] : entries.jobs;
  if (!Array.isArray(jobs) || jobs.length === 0) refuse(`${at}.jobs`, 'must be a non-empty list of job patterns');
  for (const j of jobs) {
    if (typeof j !== 'string' || !JOB_PATTERN.test(j)) {
      refuse(`${at}.jobs`, `${echo(j)} must be 1-128 characters of [A-Za-z0-9_-] and *`);
    }
  }
  const kind = onlyOne(entries, at, ['token', 'certificate']);
  const spec = record(entries[kind], `${at}.${kind}`, kind === 'token' ? ['file', 'env', 'sha256'] : ['commonName', 'dnsName', 'uri']); // prettier-ignore
  const credential: Credential =
    kind === 'token'
      ? { kind: 'token', digest: readToken(spec, `${at}.token`, sources) }
      : readCertificate(spec, `${at}.certificate`);
  return {
    name,
    roles,
    actions: new Set(roles.flatMap((r) => ROLES[r])),
    jobs: jobs as string[],
    allJobs: (jobs as string[]).includes('*'),
    jobPatterns: (jobs as string[]).map(globPattern),
    credential,
  };
}

/** Checks and compiles the policy in `json`; throws `CkptError('MALFORMED')` saying what is wrong and where. */
export function parseAccessPolicy(json: string, sources: PolicySources): AccessPolicy {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    refuse('the file', `is not JSON: ${(err as Error).message}`);
  }
  const top = record(value, 'the file', ['principals']);
  if (!Array.isArray(top.principals)) refuse('principals', 'must be a list');
  if (top.principals.length > MAX_PRINCIPALS) refuse('principals', `more than ${MAX_PRINCIPALS}`);
  const principals = top.principals.map((p: unknown, i: number) => readPrincipal(p, `principals[${i}]`, sources));
  const names = new Set<string>();
  for (const p of principals) {
    if (names.has(p.name)) refuse(`principal ${echo(p.name)}`, 'the name is given twice');
    names.add(p.name);
  }
  return { principals };
}

/** Reads, checks and compiles the policy file at `path` (and the token files it names). */
export function loadAccessPolicy(path: string, env: NodeJS.ProcessEnv = process.env): AccessPolicy {
  let json: string;
  try {
    json = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CkptError('MALFORMED', `access policy: cannot read ${path}: ${(err as Error).message}`);
  }
  return parseAccessPolicy(json, { env, baseDir: dirname(resolve(path)) });
}
