/**
 * The balance of job groups among the coordinators of a prefix. Every
 * process campaigns in every group, so a group's leader dies and the next
 * in its line takes over: a death moves only the dead process's groups.
 * Left at that, the oldest process would lead every group. So every
 * `intervalMs` each process reads all candidacies and compares the groups
 * it leads with its fair share, `ceil(K / members)`, where members are the
 * distinct addresses that campaign:
 *
 * - a process over its share, continuously for `settleMs`, resigns one
 *   group (preferably one whose next candidate is under its share) and
 *   campaigns in it again at the back of the line; at most one resignation
 *   per `settleMs`, so that a process that just died (its candidacies live
 *   until their leases expire) is not counted as a member for long enough
 *   to make a live one resign;
 * - a standby at or over its share that stands next in line behind a
 *   leader over its share moves to the back of that line, so that the
 *   group goes to a process under its share rather than cascading.
 *
 * A resignation costs the group's jobs one fail-over, as a death would.
 */
import type { Etcd3 } from 'etcd3';
import { fairShareOfGroups } from '../core/job-groups.js';
import type { Logger } from '../log/index.js';
import { callEtcd } from '../store/index.js';
import { electionsKeyPrefix, groupElectionName } from './election.js';
import type { JobGroup } from './job-group.js';

/** Candidacy keys read at once: far more than K × coordinators ever are. */
const MAX_CANDIDACIES_READ = 10_000;

/** Options of a `GroupBalance`. */
export interface GroupBalanceOptions {
  client: Etcd3;
  prefix: string;
  /** This process's groups, one per group, in group order. */
  groups: readonly JobGroup[];
  /** This process's advertised address. */
  self: () => string;
  /** How often the candidacies are read. */
  intervalMs: number;
  /** How long a process must be over its share before it resigns a group, and between resignations. */
  settleMs: number;
  logger: Logger;
}

/** The candidacies of each group, oldest (the leader) first. */
type Lines = Map<number, string[]>;

/** Balances this process's groups from `start()` to `stop()`. */
export class GroupBalance {
  readonly #o: GroupBalanceOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #overSinceMs: number | undefined;
  #running = false;
  #stopped = true;

  /** See `GroupBalanceOptions`. */
  constructor(options: GroupBalanceOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'group-balance' });
  }

  start(): void {
    if (!this.#stopped || this.#o.groups.length < 2) return;
    this.#stopped = false;
    this.#timer = setInterval(() => void this.#tick(), this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #tick(): Promise<void> {
    if (this.#running || this.#stopped) return;
    this.#running = true;
    try {
      this.#balance(await this.#lines());
    } catch (err) {
      this.#log.debug({ err }, 'candidacies not read; balancing later');
    } finally {
      this.#running = false;
    }
  }

  /** Every group's line of candidate addresses, read from etcd. */
  async #lines(): Promise<Lines> {
    const { client, prefix, groups } = this.#o;
    const found = await callEtcd({ operation: 'read the candidacies of every job group' }, () =>
      client.getAll().prefix(electionsKeyPrefix(prefix)).limit(MAX_CANDIDACIES_READ).exec(),
    );
    const byName = new Map(groups.map((g) => [groupElectionName(g.group, g.groups), g.group]));
    const keyed = new Map<number, Array<{ address: string; revision: number }>>();
    for (const kv of found.kvs) {
      const name = kv.key.toString().slice(electionsKeyPrefix(prefix).length).split('/')[0] ?? '';
      const group = byName.get(name);
      if (group === undefined) continue;
      const line = keyed.get(group) ?? [];
      line.push({ address: kv.value.toString(), revision: Number(kv.create_revision) });
      keyed.set(group, line);
    }
    const lines: Lines = new Map();
    for (const [group, line] of keyed) {
      lines.set(
        group,
        line.sort((a, b) => a.revision - b.revision).map((c) => c.address),
      );
    }
    return lines;
  }

  #balance(lines: Lines): void {
    const self = this.#o.self();
    const members = new Set([...lines.values()].flat()).size;
    const share = fairShareOfGroups(this.#o.groups.length, members);
    const led = new Map<string, number>();
    for (const line of lines.values()) if (line[0] !== undefined) led.set(line[0], (led.get(line[0]) ?? 0) + 1);
    const mine = this.#o.groups.filter((g) => g.leading);
    this.#yieldPlaces(lines, led, share, self);
    if (mine.length <= share) {
      this.#overSinceMs = undefined;
      return;
    }
    const now = Date.now();
    this.#overSinceMs ??= now;
    if (now - this.#overSinceMs < this.#o.settleMs) return;
    const under = (address: string | undefined): boolean => address !== undefined && (led.get(address) ?? 0) < share;
    const preferred = mine.find((g) => under(lines.get(g.group)?.[1]));
    // Without a group whose next candidate is under its share, one more wait lets standbys yield their places.
    if (preferred === undefined && now - this.#overSinceMs < 2 * this.#o.settleMs) return;
    const resigned = preferred ?? mine.at(-1);
    if (resigned === undefined) return;
    this.#overSinceMs = now;
    const why = `rebalancing: this coordinator leads ${mine.length} of ${this.#o.groups.length} job groups, its share among ${members} coordinators is ${share}`;
    this.#log.info({ jobGroup: resigned.group, led: mine.length, share, members }, 'resigning a job group');
    resigned.leadership.stepDown(why);
  }

  /** Standby places next in line behind a leader over its share, given up when this process has its share. */
  #yieldPlaces(lines: Lines, led: Map<string, number>, share: number, self: string): void {
    if ((led.get(self) ?? 0) < share) return;
    for (const group of this.#o.groups) {
      const line = lines.get(group.group) ?? [];
      const leader = line[0];
      if (group.leading || leader === undefined || leader === self || line[1] !== self) continue;
      if ((led.get(leader) ?? 0) <= share) continue;
      if (!line.slice(2).some((address) => address !== self && (led.get(address) ?? 0) < share)) continue;
      group.leadership.requeue(`this coordinator has its share of ${share} job groups; one with fewer goes first`);
    }
  }
}
