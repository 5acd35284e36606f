/**
 * The NATS users of deploy/kubernetes/base/nats.conf are those that
 * `renderNatsPermissions` writes, the one source `make cluster` and the
 * fault suite run on: the coordinator's permissions, and for each
 * `worker-<job>` user the permissions of that job's workers (the word
 * count's with the streams its source reads and its sink writes). A change
 * to either side that the other does not follow fails here.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { wordCountSecureJob } from '../../examples/wordcount/secure.js';
import {
  DEFAULT_SECURE_SUBJECT_PREFIX,
  coordinatorPermissions,
  workerPermissions,
  type NatsPermissions,
  type SecureJob,
} from '../../src/dev/index.js';
import { REPO_ROOT } from '../helpers/kubernetes-manifests.js';

const NATS_CONF = join(REPO_ROOT, 'deploy', 'kubernetes', 'base', 'nats.conf');

/** The jobs the deploy gives a worker user, with the streams their tasks use. */
const DEPLOYED_JOBS: Record<string, SecureJob> = { wordcount: wordCountSecureJob('wordcount') };

type ConfValue = string | ConfValue[] | { [key: string]: ConfValue };

/**
 * Parses the nats-server configuration format as far as nats.conf uses it:
 * `key: value`, `key = value` and `key value`, blocks, arrays with or
 * without commas, quoted and bare strings, `#` comments.
 */
function parseNatsConf(text: string): Record<string, ConfValue> {
  const tokens = tokenize(text);
  let i = 0;
  const peek = (): string | undefined => tokens[i];
  const next = (): string => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('nats.conf ends early');
    return t;
  };
  const value = (): ConfValue => {
    const t = next();
    if (t === '{') return block('}');
    if (t === '[') {
      const items: ConfValue[] = [];
      while (peek() !== ']') {
        if (peek() === ',') {
          next();
          continue;
        }
        items.push(value());
      }
      next();
      return items;
    }
    return t.startsWith('"') ? t.slice(1, -1) : t;
  };
  const block = (end: string | undefined): Record<string, ConfValue> => {
    const out: Record<string, ConfValue> = {};
    while (peek() !== end) {
      const key = next();
      if (key === ',') continue;
      if (peek() === ':' || peek() === '=') next();
      out[key.replace(/^"|"$/g, '')] = value();
    }
    if (end !== undefined) next();
    return out;
  };
  return block(undefined);
}

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s+|#[^\n]*|"(?:[^"\\]|\\.)*"|[{}[\],:=]|[^\s{}[\],:=#"]+/gy;
  for (let m = pattern.exec(text); m !== null && m[0] !== ''; m = pattern.exec(text)) {
    const t = m[0];
    if (/^\s/.test(t) || t.startsWith('#')) continue;
    tokens.push(t);
  }
  if (pattern.lastIndex !== 0 && pattern.lastIndex < text.length) throw new Error(`nats.conf: cannot read at ${pattern.lastIndex}`); // prettier-ignore
  return tokens;
}

/** A user's permissions as the file gives them: lists, with deny lists absent taken as empty. */
function permissionsOf(user: Record<string, ConfValue>): NatsPermissions {
  const p = (user.permissions ?? {}) as Record<string, Record<string, ConfValue>>;
  const side = (name: 'publish' | 'subscribe'): { allow: string[]; deny: string[] } => ({
    allow: [...((p[name]?.allow ?? []) as string[])].sort(),
    deny: [...((p[name]?.deny ?? []) as string[])].sort(),
  });
  return { publish: side('publish'), subscribe: side('subscribe') };
}

function sorted(p: NatsPermissions): NatsPermissions {
  const side = (s: { allow: string[]; deny: string[] }): { allow: string[]; deny: string[] } => ({
    allow: [...s.allow].sort(),
    deny: [...s.deny].sort(),
  });
  return { publish: side(p.publish), subscribe: side(p.subscribe) };
}

/** The users of the ckpt account (or of a plain `authorization` block). */
async function deployedUsers(): Promise<Array<Record<string, ConfValue>>> {
  const conf = parseNatsConf(await readFile(NATS_CONF, 'utf8'));
  const accounts = (conf.accounts ?? {}) as Record<string, Record<string, ConfValue>>;
  const holder = accounts.CKPT ?? (conf.authorization as Record<string, ConfValue> | undefined) ?? {};
  return (holder.users ?? []) as Array<Record<string, ConfValue>>;
}

test('the deploy has the coordinator user, with the permissions the renderer gives it', async (t) => {
  const users = await deployedUsers();
  const coordinator = users.find((u) => u.user === 'coordinator');
  t.truthy(coordinator, 'a user named coordinator');
  t.deepEqual(permissionsOf(coordinator ?? {}), sorted(coordinatorPermissions(DEFAULT_SECURE_SUBJECT_PREFIX)));
});

test("each worker user of the deploy has the permissions the renderer gives that job's workers", async (t) => {
  const users = await deployedUsers();
  const workers = users.filter((u) => u.user !== 'coordinator');
  t.true(workers.length > 0, 'the deploy has worker users');
  for (const user of workers) {
    const name = typeof user.user === 'string' ? user.user : JSON.stringify(user.user);
    const jobId = /^worker-(.+)$/.exec(name)?.[1];
    const job = jobId === undefined ? undefined : DEPLOYED_JOBS[jobId];
    if (job === undefined) {
      t.fail(`user ${name} is neither the coordinator nor the worker of a known job (${Object.keys(DEPLOYED_JOBS).join(', ')})`); // prettier-ignore
      continue;
    }
    t.deepEqual(permissionsOf(user), sorted(workerPermissions(DEFAULT_SECURE_SUBJECT_PREFIX, job)), name);
  }
});

test('the reader of nats.conf takes its forms: separators, arrays without commas, comments, quoted keys', (t) => {
  const conf = parseNatsConf(
    'a: 1\nb = "x # not a comment"\nc { d: [1, 2\n 3] } # comment\n"e": [{ f: g }, { h = "i" }]\nk $VAR\n',
  );
  t.deepEqual(conf, {
    a: '1',
    b: 'x # not a comment',
    c: { d: ['1', '2', '3'] },
    e: [{ f: 'g' }, { h: 'i' }],
    k: '$VAR',
  });
});
