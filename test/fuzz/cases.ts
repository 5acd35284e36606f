/**
 * One generated input of a target, in one of four forms: a structured
 * message of the target's type, a valid message with one field changed, a
 * valid message's encoding with its bytes damaged, or random bytes. A
 * case stays symbolic (see `values.ts`) until `caseBytes` turns it into
 * the request body against the fixture of the moment.
 */
import fc from 'fast-check';
import type { AttachMode } from './contract.js';
import type { FixtureContext } from './fixture.js';
import { materialize } from './values.js';
import { encode, type Message, type Value } from './wire.js';

/** How a case was made. */
export type Form = 'structured' | 'mutation' | 'corrupt' | 'bytes';

/** Damage done to an encoding. */
export interface Corruption {
  op: 'flip' | 'truncate' | 'append' | 'insert';
  at: number;
  byte: number;
  extra: Uint8Array;
}

/** One generated input. */
export interface FuzzCase {
  form: Form;
  /** For Attach targets: where in a session the message goes. */
  mode?: AttachMode;
  /** `structured`: the message. */
  message?: unknown;
  /** `mutation`: the field path (dot-separated, indices for lists) and its new value (undefined: removed). */
  path?: string;
  value?: unknown;
  /** `corrupt`: the damage to the valid message's encoding. */
  corruption?: Corruption;
  /** `bytes`: the request body. */
  bytes?: Uint8Array;
}

/** A field path of a template and the values to put there. */
export interface MutationSite {
  path: string;
  values: fc.Arbitrary<unknown>;
}

/** What a target generates from. */
export interface CaseSource {
  /** The protobuf type of a request body (`AttachRequest` for Attach targets). */
  requestType: string;
  /** A valid request, symbolic. */
  template: Message;
  /** Structured messages of the request type. */
  structured: fc.Arbitrary<unknown>;
  /** Where and what a mutation changes. */
  sites: readonly MutationSite[];
  /** Attach targets: the modes to spread cases over. */
  modes?: readonly AttachMode[];
}

const corruption: fc.Arbitrary<Corruption> = fc.record({
  op: fc.constantFrom('flip', 'truncate', 'append', 'insert'),
  at: fc.nat(),
  byte: fc.integer({ min: 0, max: 255 }),
  extra: fc.oneof(
    fc.uint8Array({ maxLength: 16 }),
    // A field header announcing a length far beyond the message.
    fc.constant(Uint8Array.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])),
  ),
});

/** Cases of every form for `source`, spread over its modes. */
export function caseArbitrary(source: CaseSource): fc.Arbitrary<FuzzCase> {
  const mutation = fc.oneof(
    ...source.sites.map((site) =>
      fc.option(site.values, { freq: 8, nil: undefined }).map((value) => ({ path: site.path, value })),
    ),
  );
  const forms = fc.oneof(
    { arbitrary: source.structured.map((message) => ({ form: 'structured' as const, message })), weight: 35 },
    { arbitrary: mutation.map((m) => ({ form: 'mutation' as const, ...m })), weight: 40 },
    { arbitrary: corruption.map((c) => ({ form: 'corrupt' as const, corruption: c })), weight: 12 },
    {
      arbitrary: fc.uint8Array({ maxLength: 256 }).map((bytes) => ({ form: 'bytes' as const, bytes })),
      weight: 8,
    },
  );
  const modes = source.modes ?? [];
  if (modes.length === 0) return forms;
  return fc.tuple(forms, fc.constantFrom(...modes)).map(([c, mode]) => ({ ...c, mode }));
}

function clone(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(clone);
  if (typeof value === 'object' && value !== null && !(value instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, clone(v)]));
  }
  return value;
}

/** A copy of `template` with the field at `path` set to `value` (removed when undefined). */
export function mutate(template: Message, path: string, value: unknown): Message {
  const root = clone(template) as Record<string, unknown>;
  const keys = path.split('.');
  let node: Record<string, unknown> = root;
  keys.slice(0, -1).forEach((key, i) => {
    const next = node[key];
    if (typeof next !== 'object' || next === null) node[key] = /^\d+$/.test(keys[i + 1] ?? '') ? [] : {};
    node = node[key] as Record<string, unknown>;
  });
  const last = keys.at(-1) as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return root as Message;
}

function damage(bytes: Buffer, c: Corruption): Buffer {
  const at = bytes.length === 0 ? 0 : c.at % bytes.length;
  switch (c.op) {
    case 'flip': {
      const out = Buffer.from(bytes);
      if (out.length > 0) out[at] = (out[at] ?? 0) ^ (c.byte || 0x80);
      return out;
    }
    case 'truncate':
      return bytes.subarray(0, at);
    case 'append':
      return Buffer.concat([bytes, c.extra]);
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), c.extra, bytes.subarray(at)]);
  }
}

/** The request body of a case against the fixture's `context`. */
export function caseBytes(source: CaseSource, c: FuzzCase, context: FixtureContext): Buffer {
  const encodeCase = (message: unknown): Buffer => encode(source.requestType, materialize(message, context) as Message);
  switch (c.form) {
    case 'structured':
      return encodeCase(c.message);
    case 'mutation':
      return encodeCase(mutate(source.template, c.path ?? '', c.value));
    case 'corrupt':
      return damage(encodeCase(source.template), c.corruption as Corruption);
    case 'bytes':
      return Buffer.from(c.bytes ?? []);
  }
}

/** For messages: a short description of a case for failure reports. */
export function describeCase(c: FuzzCase): string {
  return JSON.stringify(c, (_k, v: Value | Uint8Array) =>
    typeof v === 'bigint' ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v,
  );
}
