/**
 * The partitioning test vectors of proto/PROTOCOL.md are what the code
 * computes: every row of the table is checked against src/core/key-groups.ts,
 * the SDK's `ckpt-key` header, and the rules as the document spells them
 * out (FNV-1a over UTF-8, key group, owner index, the percent-encoding), so
 * that the document cannot drift from the implementation. Its errors table
 * names every reason of coordinator.proto with the status code the
 * coordinator sends.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import test from 'ava';
import type { ErrorReason } from '../../src/core/errors.js';
import { ErrorReason as WireErrorReason } from '../../src/gen/ckpt/v1/ErrorReason.js';
import { STATUS_OF_REASON } from '../../src/server/status.js';
import { fnv1a32, KEY_GROUPS, keyGroupOf, keyGroupRange, partitionIndex } from '../../src/core/key-groups.js';
import { KEY_HEADER, recordHeaders } from '../../src/sdk/record.js';

const DOCUMENT = new URL('../../proto/PROTOCOL.md', import.meta.url);

interface Vector {
  key: string;
  hash: string;
  group: number;
  partitions: Map<number, number>;
  header: string;
}

/** The rows between the vectors markers; the columns as the header row names them. */
function vectors(): Vector[] {
  const text = readFileSync(DOCUMENT, 'utf8');
  const block = /<!-- vectors:begin -->([\s\S]*?)<!-- vectors:end -->/.exec(text)?.[1];
  if (block === undefined) throw new Error('PROTOCOL.md has no vectors block');
  const rows = block
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .slice(1, -1)
        .split(' | ')
        .map((cell) => cell.trim()),
    );
  const [header, separator, ...body] = rows;
  if (header === undefined || separator === undefined) throw new Error('the vectors table has no header');
  const column = (name: string): number => {
    const index = header.indexOf(name);
    if (index < 0) throw new Error(`the vectors table has no column ${name}`);
    return index;
  };
  const nColumns = header.flatMap((name, index) => (name.startsWith('n=') ? [[Number(name.slice(2)), index]] : []));
  const code = (cell: string | undefined): string => {
    const match = /^`(.*)`$/.exec(cell ?? '');
    if (match === null) throw new Error(`cell ${cell} is not in backticks`);
    return match[1] as string;
  };
  return body.map((cells) => ({
    key: JSON.parse(code(cells[column('key (JSON)')])) as string,
    hash: code(cells[column('fnv1a32')]),
    group: Number(cells[column('keyGroup')]),
    partitions: new Map(nColumns.map(([n, index]) => [n as number, Number(cells[index as number])])),
    header: cells[column('ckpt-key')] === '(empty)' ? '' : code(cells[column('ckpt-key')]),
  }));
}

/** FNV-1a 32-bit as the document states it, over the UTF-8 bytes. */
function fnvAsWritten(key: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(key, 'utf8')) h = Number((BigInt((h ^ b) >>> 0) * 0x01000193n) % 2n ** 32n);
  return h;
}

/** The percent-encoding as the document states it. */
function encodeAsWritten(key: string): string {
  let out = '';
  for (const ch of key) {
    if (/^[A-Za-z0-9\-_.!~*'()]$/.test(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The partition index as the document states it. */
function partitionAsWritten(key: string, n: number): number {
  const h = fnvAsWritten(key);
  return n > 32768 ? h % n : Math.floor(((h % 32768) * n) / 32768);
}

const table = vectors();

test('the vectors table has the rows the document promises', (t) => {
  const keys = table.map((v) => v.key);
  for (const key of ['', 'a', 'foobar']) t.true(keys.includes(key), `row for ${JSON.stringify(key)}`);
  t.true(
    keys.some((key) => [...key].some((ch) => ch.codePointAt(0)! > 0x7f)),
    'a non-ASCII key',
  );
  t.true(
    table.every((v) => [2, 3, 7].every((n) => v.partitions.has(n))),
    'columns n=2, n=3, n=7',
  );
  t.is(KEY_GROUPS, 32768);
});

test('every row is what src/core/key-groups.ts computes', (t) => {
  for (const v of table) {
    const label = JSON.stringify(v.key);
    t.is(fnv1a32(v.key).toString(16).padStart(8, '0'), v.hash, `fnv1a32 of ${label}`);
    t.is(keyGroupOf(v.key), v.group, `key group of ${label}`);
    for (const [n, index] of v.partitions) t.is(partitionIndex(v.key, n), index, `partition of ${label} over ${n}`);
  }
});

test('every row follows the rules as the document writes them', (t) => {
  for (const v of table) {
    const label = JSON.stringify(v.key);
    t.is(fnvAsWritten(v.key).toString(16).padStart(8, '0'), v.hash, `fnv1a32 of ${label}`);
    t.is(fnvAsWritten(v.key) % 32768, v.group, `key group of ${label}`);
    for (const [n, index] of v.partitions) t.is(partitionAsWritten(v.key, n), index, `partition of ${label} over ${n}`);
    t.is(encodeAsWritten(v.key), v.header, `ckpt-key of ${label}`);
  }
});

test('the ckpt-key column is the header the SDK sends', (t) => {
  for (const v of table) {
    t.is(recordHeaders(1, v.key).get(KEY_HEADER), v.header, `ckpt-key of ${JSON.stringify(v.key)}`);
    t.is(encodeURIComponent(v.key), v.header);
  }
});

test("a partition's owner owns the key's group in the ranges keyed state is split by", (t) => {
  for (const v of table) {
    for (const [n, index] of v.partitions) {
      if (n > KEY_GROUPS) continue;
      const { start, end } = keyGroupRange(index, n);
      t.true(v.group >= start && v.group < end, `${JSON.stringify(v.key)}: group ${v.group} in [${start}, ${end})`);
    }
  }
});

test('the percent-encoding keeps exactly the unreserved set', (t) => {
  for (let code = 0x20; code < 0x7f; code += 1) {
    const ch = String.fromCharCode(code);
    t.is(encodeURIComponent(ch), encodeAsWritten(ch), `character ${JSON.stringify(ch)}`);
  }
});

/** The rows of the errors table: the reasons of each row and its status code cell. */
function reasonRows(): Array<{ reasons: string[]; code: string }> {
  const text = readFileSync(DOCUMENT, 'utf8');
  const block = /<!-- reasons:begin -->([\s\S]*?)<!-- reasons:end -->/.exec(text)?.[1];
  if (block === undefined) throw new Error('PROTOCOL.md has no reasons block');
  return block
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .slice(2)
    .map((line) => {
      const [reasons = '', code = ''] = line.slice(1, -1).split(' | ');
      const names = reasons.replace(/\(on `Attach`\)/, '').split(',');
      return { reasons: names.map((name) => name.trim()), code: code.trim() };
    });
}

test('the errors table names every ErrorReason, each once, with its status code', (t) => {
  const rows = reasonRows();
  const named = rows.flatMap((row) => row.reasons);
  const known = Object.keys(STATUS_OF_REASON).sort();
  t.deepEqual([...named].sort(), known, 'every reason of the enum, and nothing else, once');
  const wire = Object.keys(WireErrorReason)
    .filter((name) => name !== 'ERROR_REASON_UNSPECIFIED')
    .map((name) => name.replace(/^ERROR_REASON_/, ''))
    .sort();
  t.deepEqual(known, wire, 'the coordinator maps every reason coordinator.proto defines');
  for (const row of rows) {
    if (!/^[A-Z_]+$/.test(row.code)) continue;
    for (const reason of row.reasons) {
      t.is(STATUS_OF_REASON[reason as ErrorReason], grpc.status[row.code as keyof typeof grpc.status], reason);
    }
  }
});
