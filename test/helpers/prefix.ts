/**
 * Per-test namespaces, so that tests sharing one etcd and one NATS server
 * never see each other's keys or messages.
 */
import { randomBytes } from 'node:crypto';

/** How many characters of the test title a prefix keeps. */
export const DEFAULT_SLUG_CHARS = 40;

/** A test's own etcd key prefix and NATS subject prefix. */
export interface TestPrefix {
  /** `/test-<slug>-<random>/`: every etcd key of the test starts with it. */
  etcd: string;
  /** `t_<slug>_<random>`: one NATS token, used as the first token of every subject of the test. */
  nats: string;
}

/** The title of a test, as ava's `t.title` offers it. */
export interface Titled {
  readonly title: string;
}

/** A fresh prefix pair for the test `t`, unique across runs and retries. */
export function uniquePrefix(t: Titled): TestPrefix {
  const slug = slugify(t.title);
  const random = randomBytes(4).toString('hex');
  return { etcd: `/test-${slug}-${random}/`, nats: `t_${slug}_${random}` };
}

/** Lower-case letters, digits and single dashes only: valid in etcd keys and NATS tokens. */
export function slugify(title: string): string {
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, DEFAULT_SLUG_CHARS)
    .replace(/^-+|-+$/g, '');
  return slug || 'test';
}
