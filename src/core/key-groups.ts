/**
 * Key groups: the unit keyed state is partitioned, routed and rescaled by,
 * as in Flink. A key's group is `fnv1a32(key) mod KEY_GROUPS`; the tasks of
 * one operator split the groups into contiguous ranges, task `i` of `n`
 * owning `[ceil(i·K/n), ceil((i+1)·K/n))`, and a keyed record goes to the
 * task owning its key's group. Since the number of groups is fixed, the
 * state of a group moves whole when the operator's parallelism changes:
 * each new task restores the groups of its range from the pieces of the
 * old tasks whose ranges overlap it.
 */
import type { JobSpec__Output } from '../gen/ckpt/v1/JobSpec.js';
import { CkptError } from './errors.js';

/**
 * How many key groups keyed state is split into: the most tasks a keyed
 * operator can be rescaled to (Flink's upper bound of max parallelism).
 * Records partitioned over more tasks than this go by `fnv1a32(key) mod n`
 * instead, and such an operator cannot be rescaled.
 */
export const KEY_GROUPS = 32_768;

/** A contiguous range of key groups, `start` included, `end` excluded. */
export interface KeyGroupRange {
  start: number;
  end: number;
}

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const encoder = new TextEncoder();

/** The 32-bit FNV-1a hash of the UTF-8 bytes of `text`. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  // ASCII text is its own UTF-8: hashed without encoding it first.
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code >= 0x80) return fnv1a32Bytes(encoder.encode(text));
    hash ^= code;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

function fnv1a32Bytes(bytes: Uint8Array): number {
  let hash = FNV_OFFSET_BASIS;
  for (const byte of bytes) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash >>> 0;
}

/** The key group of `key`. */
export function keyGroupOf(key: string, keyGroups = KEY_GROUPS): number {
  return fnv1a32(key) % keyGroups;
}

/** The index in `[0, n)` of the task of `n` owning key group `group`. */
export function taskIndexOfGroup(group: number, n: number, keyGroups = KEY_GROUPS): number {
  return Math.floor((group * n) / keyGroups);
}

/**
 * The index in `[0, n)` of the task of `n` a record with `key` goes to:
 * the owner of the key's group, or, over more than `KEY_GROUPS` tasks,
 * `fnv1a32(key) mod n`.
 */
export function partitionIndex(key: string, n: number): number {
  const hash = fnv1a32(key);
  return n > KEY_GROUPS ? hash % n : taskIndexOfGroup(hash % KEY_GROUPS, n);
}

/**
 * The key groups task `index` of `n` owns. Throws MALFORMED when `n` is
 * not in `[1, keyGroups]` or `index` not in `[0, n)`.
 */
export function keyGroupRange(index: number, n: number, keyGroups = KEY_GROUPS): KeyGroupRange {
  if (!Number.isSafeInteger(n) || n < 1 || n > keyGroups) {
    throw new CkptError('MALFORMED', `an operator of ${n} tasks cannot split ${keyGroups} key groups`);
  }
  if (!Number.isSafeInteger(index) || index < 0 || index >= n) {
    throw new CkptError('MALFORMED', `task index ${index} is not within an operator of ${n} tasks`);
  }
  return { start: Math.ceil((index * keyGroups) / n), end: Math.ceil(((index + 1) * keyGroups) / n) };
}

/** Every key group. */
export function allKeyGroups(keyGroups = KEY_GROUPS): KeyGroupRange {
  return { start: 0, end: keyGroups };
}

/** True when the two ranges share a key group. */
export function rangesOverlap(a: KeyGroupRange, b: KeyGroupRange): boolean {
  return a.start < b.end && b.start < a.end;
}

/** True when the ranges are the same. */
export function sameRange(a: KeyGroupRange, b: KeyGroupRange): boolean {
  return a.start === b.start && a.end === b.end;
}

/** The label naming a task's operator: the tasks with the same one split its key groups. */
export const OPERATOR_LABEL = 'operator';

/** Per task with an `operator` label, the sorted ids of its operator's tasks. */
export function operatorTasks(spec: Pick<JobSpec__Output, 'tasks'>): Map<string, string[]> {
  const byOperator = new Map<string, string[]>();
  for (const task of spec.tasks) {
    const operator = task.labels?.[OPERATOR_LABEL];
    if (operator === undefined || operator === '') continue;
    const list = byOperator.get(operator) ?? [];
    if (!list.includes(task.taskId)) list.push(task.taskId);
    byOperator.set(operator, list);
  }
  const byTask = new Map<string, string[]>();
  for (const list of byOperator.values()) {
    list.sort();
    for (const taskId of list) byTask.set(taskId, list);
  }
  return byTask;
}
