/**
 * Turning on etcd's authentication with `etcdctl`: a root user (etcd needs
 * one before auth can be enabled) and one user whose role may read and
 * write one key prefix and nothing else.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How `etcdctl` reaches a TLS etcd: endpoints, and the CA and client certificate it presents. */
export interface EtcdctlTarget {
  endpoints: readonly string[];
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The users `enableEtcdAuth` creates. */
export interface EtcdAuthPlan {
  rootPassword: string;
  /** The user that gets readwrite on `prefix` only, and its password. */
  user: string;
  password: string;
  /** The key prefix `user` may read and write, e.g. `/ckpt/`. */
  prefix: string;
}

/**
 * Creates root and `plan.user` with a role of the same name holding
 * readwrite on `plan.prefix`, then enables auth. Rejects with etcdctl's
 * message when a step fails.
 */
export async function enableEtcdAuth(target: EtcdctlTarget, plan: EtcdAuthPlan): Promise<void> {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(plan.user) || plan.user === 'root') {
    throw new Error(`etcd user ${JSON.stringify(plan.user)} is not 1-64 characters of [A-Za-z0-9_-] other than root`);
  }
  if (!plan.prefix.startsWith('/') || !plan.prefix.endsWith('/')) {
    throw new Error(`etcd prefix ${JSON.stringify(plan.prefix)} must start and end with "/"`);
  }
  await etcdctl(target, ['user', 'add', `root:${plan.rootPassword}`]);
  await etcdctl(target, ['user', 'grant-role', 'root', 'root']);
  await etcdctl(target, ['role', 'add', plan.user]);
  await etcdctl(target, ['role', 'grant-permission', plan.user, '--prefix=true', 'readwrite', plan.prefix]);
  await etcdctl(target, ['user', 'add', `${plan.user}:${plan.password}`]);
  await etcdctl(target, ['user', 'grant-role', plan.user, plan.user]);
  await etcdctl(target, ['auth', 'enable']);
}

/** Runs one `etcdctl` command against `target`; rejects with its stderr. */
export async function etcdctl(target: EtcdctlTarget, args: readonly string[]): Promise<string> {
  const connection = [
    ['--endpoints', target.endpoints.join(',')],
    ['--cacert', target.caFile, '--cert', target.certFile, '--key', target.keyFile],
    ['--dial-timeout', '5s', '--command-timeout', '10s'],
  ].flat();
  try {
    const { stdout } = await run('etcdctl', [...connection, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    return stdout;
  } catch (err) {
    const { stderr } = err as { stderr?: string | Buffer };
    const said = stderr === undefined ? '' : stderr.toString().trim();
    // The command line, and so the error's own message, holds passwords: name the subcommand only.
    throw new Error(`etcdctl ${args.slice(0, 2).join(' ')} failed: ${said || 'no message'}`);
  }
}
