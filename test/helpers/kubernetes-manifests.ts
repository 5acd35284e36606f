/**
 * Offline checks of the Kubernetes manifests in deploy/kubernetes, without a
 * cluster: render a kustomization with `kubectl kustomize`, validate each
 * object against the Kubernetes schemas (kubernetes-models), type-check them
 * against kubernetes-types (whose exact object types catch misspelled
 * fields, which the schemas let through), and test the NATS server config
 * with `nats-server -t`.
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTool, type ToolResult } from './run-tool.js';

/** The repository's root directory. */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** deploy/kubernetes, where the kustomizations live. */
export const KUBERNETES_DIR = join(REPO_ROOT, 'deploy/kubernetes');

/** The kustomizations meant to be applied, relative to `KUBERNETES_DIR`. */
export const KUSTOMIZATIONS = ['base', 'examples/wordcount'] as const;

/** A rendered Kubernetes object, as far as these checks read it. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; [field: string]: unknown };
  [field: string]: unknown;
}

/** `kind/name` of an object, for messages. */
export function describeObject(o: KubeObject): string {
  return `${o.kind}/${o.metadata.name}`;
}

/** True when `kubectl` runs here. */
export async function hasKubectl(): Promise<boolean> {
  return !(await runTool('kubectl', ['version', '--client'])).missing;
}

/**
 * Renders the kustomization in `dir` (relative to `KUBERNETES_DIR`) into its
 * objects. YAML becomes JSON through kubectl itself (a no-op label removal
 * on the rendered file, offline), so values read as the API server reads
 * them. Throws with kubectl's output when either step fails.
 */
export async function renderKustomization(dir: string, scratch: string): Promise<KubeObject[]> {
  const rendered = await runTool('kubectl', ['kustomize', join(KUBERNETES_DIR, dir)]);
  if (!rendered.ok) throw new Error(`kubectl kustomize ${dir} failed:\n${rendered.out}`);
  const file = join(scratch, `${dir.replaceAll('/', '-')}.yaml`);
  await writeFile(file, rendered.stdout);
  const json = await runTool('kubectl', ['label', '--local', '-o', 'json', '-f', file, 'ckpt-deploy-check-']);
  if (!json.ok) throw new Error(`kubectl could not read the objects of ${dir}:\n${json.out}`);
  // kubectl prints one JSON document per object, each starting with a `{` line.
  return json.stdout
    .split(/^(?=\{$)/m)
    .filter((doc) => doc.trim() !== '')
    .map((doc) => JSON.parse(doc) as KubeObject);
}

interface ModelClass {
  new (data: unknown): { validate(): void };
}

/**
 * Validates `o` against the schema of its apiVersion and kind from
 * kubernetes-models; returns the problem, or undefined when it is valid.
 */
export async function schemaProblem(o: KubeObject): Promise<string | undefined> {
  let model: ModelClass | undefined;
  try {
    const module = (await import(`kubernetes-models/${o.apiVersion}/${o.kind}`)) as Record<string, unknown>;
    model = module[o.kind] as ModelClass | undefined;
  } catch {
    model = undefined;
  }
  if (model === undefined) return `${describeObject(o)}: kubernetes-models has no ${o.apiVersion} ${o.kind}`;
  try {
    new model(o).validate();
    return undefined;
  } catch (err) {
    return `${describeObject(o)}: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The kubernetes-types module of an apiVersion: `apps/v1` → `apps/v1`, `v1` → `core/v1`, `networking.k8s.io/v1` → `networking/v1`. */
function typesModule(apiVersion: string): string {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  return `${group?.split('.')[0] ?? ''}/${version ?? ''}`;
}

/**
 * A TypeScript module that assigns every object, as a literal, to a constant
 * of its kubernetes-types type: a field the type does not have is a type
 * error. The comment above each names the object.
 */
export function typedSource(objects: readonly { origin: string; object: KubeObject }[]): string {
  const modules = [...new Set(objects.map(({ object }) => typesModule(object.apiVersion)))];
  const alias = (module: string): string => module.replace(/\W/g, '_');
  const lines = modules.map((m) => `import type * as ${alias(m)} from 'kubernetes-types/${m}.js';`);
  objects.forEach(({ origin, object }, i) => {
    lines.push(`// ${origin}: ${describeObject(object)}`);
    const type = `${alias(typesModule(object.apiVersion))}.${object.kind}`;
    lines.push(`export const object${i}: ${type} = ${JSON.stringify(object, null, 2)};`);
  });
  return lines.join('\n') + '\n';
}

/**
 * Type-checks `source` (from `typedSource`) with the repository's tsc; its
 * result, each error preceded by the object it concerns.
 */
export async function typeCheck(source: string, scratch: string): Promise<ToolResult> {
  const file = join(scratch, 'manifests.ts');
  await writeFile(file, source);
  const tsc = join(REPO_ROOT, 'node_modules/.bin/tsc');
  const options = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext'];
  const result = await runTool(tsc, [...options, '--target', 'es2022', '--types', 'node', '--skipLibCheck', file], {
    cwd: scratch,
  });
  return {
    ...result,
    out: result.out.replace(/^manifests\.ts\((\d+),/gm, (line, n: string) => objectAt(source, Number(n)) + line),
  };
}

/** The `// origin: kind/name` comment of the object around line `n` (1-based) of `source`, and a newline. */
function objectAt(source: string, n: number): string {
  const above = source.split('\n').slice(0, n).reverse();
  return (above.find((line) => line.startsWith('// ')) ?? '') + '\n';
}

/**
 * Tests the NATS server config of the rendered objects with `nats-server -t`:
 * the ConfigMap's `nats.conf`, with the environment the NATS StatefulSet
 * gives the container (dummy values), so that a variable the config names
 * but the pod lacks fails, and its TLS files replaced by a throw-away
 * certificate made with openssl.
 */
export async function checkNatsConfig(objects: readonly KubeObject[], scratch: string): Promise<ToolResult> {
  const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('nats-config'));
  const conf = (config?.['data'] as Record<string, string> | undefined)?.['nats.conf'];
  if (conf === undefined) throw new Error('no ConfigMap nats-config with nats.conf');
  const container = natsContainer(objects);
  const cert = await runTool('openssl', [
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
    ...['-subj', '/CN=nats', '-keyout', join(scratch, 'tls.key'), '-out', join(scratch, 'tls.crt')],
  ]);
  if (!cert.ok) throw new Error(`openssl could not make a test certificate:\n${cert.out}`);
  await copyFile(join(scratch, 'tls.crt'), join(scratch, 'ca.crt'));
  const file = join(scratch, 'nats.conf');
  await writeFile(file, conf.replaceAll(`${container.tlsDir}/`, `${scratch}/`));
  const env = Object.fromEntries(container.env.map((name) => [name, `test-${name.toLowerCase()}`]));
  return runTool('nats-server', ['-t', '-c', file], { env: { PATH: process.env['PATH'], ...env } });
}

/** A fresh scratch directory under the repository's .tmp (so that tsc finds node_modules); remove it after. */
export async function makeScratch(): Promise<string> {
  await mkdir(join(REPO_ROOT, '.tmp'), { recursive: true });
  return mkdtemp(join(REPO_ROOT, '.tmp/deploy-check-'));
}

/** Removes a scratch directory of `makeScratch`. */
export function removeScratch(scratch: string): Promise<void> {
  return rm(scratch, { recursive: true, force: true });
}

interface Container {
  env?: Array<{ name: string }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

/** The environment variable names and the TLS mount of the NATS StatefulSet's container. */
function natsContainer(objects: readonly KubeObject[]): { env: string[]; tlsDir: string } {
  const statefulSet = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'nats') as
    { spec: { template: { spec: { containers: Container[] } } } } | undefined;
  const container = statefulSet?.spec.template.spec.containers[0];
  const tlsDir = container?.volumeMounts?.find((m) => m.name === 'tls')?.mountPath;
  if (container === undefined || tlsDir === undefined) throw new Error('no StatefulSet nats with a tls volume mount');
  return { env: (container.env ?? []).map((e) => e.name), tlsDir };
}

/** What the checks read of a container. */
export interface ContainerSpec {
  name: string;
  command?: string[];
  args?: string[];
  env?: Array<{ name: string }>;
}

/** Every container of the rendered workloads, with `kind/name` of the workload. */
export function containersOf(objects: readonly KubeObject[]): Array<{ owner: string; container: ContainerSpec }> {
  return objects.flatMap((o) => {
    const pod = (o['spec'] as { template?: { spec?: { containers?: ContainerSpec[] } } } | undefined)?.template?.spec;
    return (pod?.containers ?? []).map((container) => ({ owner: describeObject(o), container }));
  });
}

/** The `--flag` names among `args` (`--flag=value` or `--flag value`). */
export function flagsOf(args: readonly string[] = []): string[] {
  return args.filter((a) => a.startsWith('--')).map((a) => a.split('=')[0] ?? a);
}

/** What the checks read of a pod's volumes. */
export interface Volume {
  name: string;
  secret?: { secretName: string; items?: Array<{ key: string; path: string }> };
  configMap?: { name: string; items?: Array<{ key: string; path: string }> };
  emptyDir?: unknown;
  persistentVolumeClaim?: { claimName: string };
}

/** What the checks read of a container. */
export interface FullContainer extends ContainerSpec {
  image?: string;
  env?: Array<{
    name: string;
    value?: string;
    valueFrom?: {
      secretKeyRef?: { name: string; key: string };
      configMapKeyRef?: { name: string; key: string };
    };
  }>;
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string }>;
  securityContext?: SecurityContext;
}

export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[] };
  seccompProfile?: { type: string };
}

/** A pod template of a workload. */
export interface PodSpec {
  volumes?: Volume[];
  initContainers?: FullContainer[];
  containers: FullContainer[];
  securityContext?: SecurityContext;
}

/** Every pod template of the rendered workloads (Deployments, StatefulSets, Jobs), with `kind/name`. */
export function podsOf(objects: readonly KubeObject[]): Array<{ owner: string; pod: PodSpec }> {
  return objects.flatMap((o) => {
    const pod = (o['spec'] as { template?: { spec?: PodSpec } } | undefined)?.template?.spec;
    return pod === undefined ? [] : [{ owner: describeObject(o), pod }];
  });
}

/** The keys of a rendered Secret or ConfigMap (`data`, `stringData`, `binaryData`). */
function keysOf(o: KubeObject): string[] {
  return ['data', 'stringData', 'binaryData'].flatMap((field) => Object.keys((o[field] as object | undefined) ?? {}));
}

/** The rendered object of `kind` named `name`, if any. */
function find(objects: readonly KubeObject[], kind: string, name: string): KubeObject | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name);
}

/**
 * What pods refer to and the rendered objects lack: Secrets and ConfigMaps
 * of volumes and of environment variables, and their keys (items, key refs);
 * volumes that mounts name. One message per problem.
 */
export function missingReferences(objects: readonly KubeObject[]): string[] {
  const problems: string[] = [];
  const need = (owner: string, kind: string, name: string, keys: readonly string[]): void => {
    const o = find(objects, kind, name);
    if (o === undefined) problems.push(`${owner}: no ${kind} ${name}`);
    else for (const key of keys) if (!keysOf(o).includes(key)) problems.push(`${owner}: ${kind} ${name} has no ${key}`);
  };
  for (const { owner, pod } of podsOf(objects)) {
    for (const v of pod.volumes ?? []) {
      if (v.secret)
        need(
          owner,
          'Secret',
          v.secret.secretName,
          (v.secret.items ?? []).map((i) => i.key),
        );
      if (v.configMap)
        need(
          owner,
          'ConfigMap',
          v.configMap.name,
          (v.configMap.items ?? []).map((i) => i.key),
        );
      if (v.persistentVolumeClaim && !find(objects, 'PersistentVolumeClaim', v.persistentVolumeClaim.claimName)) {
        const templated = objects.some((o) => describeObject(o) === owner && o.kind === 'StatefulSet');
        if (!templated) problems.push(`${owner}: no PersistentVolumeClaim ${v.persistentVolumeClaim.claimName}`);
      }
    }
    const statefulSet = objects.find((o) => describeObject(o) === owner && o.kind === 'StatefulSet') as
      { spec: { volumeClaimTemplates?: Array<{ metadata: { name: string } }> } } | undefined;
    const volumes = new Set([
      ...(pod.volumes ?? []).map((v) => v.name),
      ...(statefulSet?.spec.volumeClaimTemplates ?? []).map((t) => t.metadata.name),
    ]);
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      for (const m of c.volumeMounts ?? [])
        if (!volumes.has(m.name)) problems.push(`${owner}/${c.name}: mounts ${m.name}, which is no volume`);
      for (const { valueFrom } of c.env ?? []) {
        if (valueFrom?.secretKeyRef) need(owner, 'Secret', valueFrom.secretKeyRef.name, [valueFrom.secretKeyRef.key]);
        if (valueFrom?.configMapKeyRef)
          need(owner, 'ConfigMap', valueFrom.configMapKeyRef.name, [valueFrom.configMapKeyRef.key]);
      }
    }
  }
  return problems;
}

/**
 * The file a container sees at `path`, or why it sees none: the mount that
 * holds it, and for a Secret or ConfigMap the key (or item) it is.
 */
export function fileInContainer(
  objects: readonly KubeObject[],
  pod: PodSpec,
  container: FullContainer,
  path: string,
): { ok: true } | { ok: false; why: string } {
  const mounts = (container.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length);
  const mount = mounts[0];
  if (mount === undefined) return { ok: false, why: `${path} lies under no volume mount` };
  const volume = (pod.volumes ?? []).find((v) => v.name === mount.name);
  const source = volume?.secret
    ? { kind: 'Secret', name: volume.secret.secretName, items: volume.secret.items }
    : volume?.configMap
      ? { kind: 'ConfigMap', name: volume.configMap.name, items: volume.configMap.items }
      : undefined;
  if (source === undefined) return { ok: true }; // an emptyDir or a volume claim: whatever is written there
  const file = path === mount.mountPath ? (mount.subPath ?? '') : path.slice(mount.mountPath.length + 1);
  const o = find(objects, source.kind, source.name);
  const files = source.items !== undefined ? source.items.map((i) => i.path) : o === undefined ? [] : keysOf(o);
  if (!files.includes(file))
    return { ok: false, why: `${path}: ${source.kind} ${source.name} mounted at ${mount.mountPath} has no ${file}` };
  return { ok: true };
}

/**
 * Absolute paths under /etc or /var that a container's command, arguments
 * (`--flag=/path` or a separate value) and environment values name: the
 * files and directories its flags point to.
 */
export function pathsOf(container: FullContainer): string[] {
  const values = [
    ...(container.command ?? []),
    ...(container.args ?? []).map((a) => (a.startsWith('--') && a.includes('=') ? a.slice(a.indexOf('=') + 1) : a)),
    ...(container.env ?? []).flatMap((e) => (e.value === undefined ? [] : [e.value])),
  ];
  return values.filter((v) => /^\/(etc|var)\/[\w./-]+$/.test(v));
}

/**
 * What falls short of the containers' hardening: running as non-root, a
 * read-only root filesystem, no privilege escalation, every capability
 * dropped, the runtime's default seccomp profile (each in the container's
 * or the pod's security context).
 */
export function securityProblems(objects: readonly KubeObject[]): string[] {
  const problems: string[] = [];
  for (const { owner, pod } of podsOf(objects)) {
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const own = c.securityContext ?? {};
      const where = `${owner}/${c.name}`;
      if ((own.runAsNonRoot ?? pod.securityContext?.runAsNonRoot) !== true) problems.push(`${where}: not runAsNonRoot`);
      if ((own.runAsUser ?? pod.securityContext?.runAsUser ?? 0) === 0)
        problems.push(`${where}: no non-root runAsUser`);
      if (own.readOnlyRootFilesystem !== true) problems.push(`${where}: root filesystem not read-only`);
      if (own.allowPrivilegeEscalation !== false) problems.push(`${where}: privilege escalation allowed`);
      if (!(own.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities not all dropped`);
      if ((own.seccompProfile ?? pod.securityContext?.seccompProfile)?.type !== 'RuntimeDefault')
        problems.push(`${where}: seccomp profile not RuntimeDefault`);
    }
  }
  return problems;
}

/** The data of the ConfigMap whose (generated) name starts with `prefix`, and its full name. */
function configMapData(
  objects: readonly KubeObject[],
  prefix: string,
): { name: string; data: Record<string, string> } | undefined {
  const o = objects.find((x) => x.kind === 'ConfigMap' && x.metadata.name.startsWith(prefix));
  return o === undefined ? undefined : { name: o.metadata.name, data: (o['data'] as Record<string, string>) ?? {} };
}

/**
 * Files that containers are told of and do not see: every path of
 * `pathsOf`, the files the NATS config names (in the NATS container), and
 * the token files of the access policy (in each container given
 * `--access-policy`), each checked by `fileInContainer`.
 */
export function fileProblems(objects: readonly KubeObject[]): string[] {
  const problems: string[] = [];
  const natsConf = configMapData(objects, 'nats-config')?.data['nats.conf'] ?? '';
  const natsFiles = [...natsConf.matchAll(/^\s*(?:\w+_file|store_dir):\s*(\/\S+)/gm)].map((m) => m[1] ?? '');
  const policy = configMapData(objects, 'ckpt-access-policy')?.data['access-policy.json'];
  const tokenFiles =
    policy === undefined
      ? []
      : ((JSON.parse(policy) as { principals?: Array<{ token?: { file?: string } }> }).principals?.flatMap((p) =>
          p.token?.file === undefined ? [] : [p.token.file],
        ) ?? []);
  for (const { owner, pod } of podsOf(objects)) {
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const paths = [...pathsOf(c)];
      if (owner === 'StatefulSet/nats' && c.name === 'nats') paths.push(...natsFiles);
      if ((c.args ?? []).some((a) => a.startsWith('--access-policy'))) paths.push(...tokenFiles);
      for (const path of paths) {
        const found = fileInContainer(objects, pod, c, path);
        if (!found.ok) problems.push(`${owner}/${c.name}: ${found.why}`);
      }
    }
  }
  return problems;
}

/**
 * Whether the access policy of ConfigMap ckpt-access-policy parses: with
 * the coordinator's own parser (`parseAccessPolicy`), its token files
 * replaced by a test token, as the mounted Secret would hold one.
 */
export async function accessPolicyProblems(objects: readonly KubeObject[]): Promise<string[]> {
  const json = configMapData(objects, 'ckpt-access-policy')?.data['access-policy.json'];
  if (json === undefined) return ['no ConfigMap ckpt-access-policy with access-policy.json'];
  const { parseAccessPolicy } = await import('../../src/server/access-policy.js');
  const scratch = await mkdtemp(join(REPO_ROOT, '.tmp/access-policy-'));
  try {
    // Token files (absolute paths in the pod) are read from a scratch copy that holds a 64-character token each.
    const value = JSON.parse(json) as { principals: Array<{ token?: { file?: string } }> };
    for (const [i, p] of value.principals.entries()) {
      if (p.token?.file === undefined) continue;
      const file = join(scratch, `token-${i}`);
      await writeFile(file, 'a'.repeat(64));
      p.token.file = file;
    }
    const parsed = parseAccessPolicy(JSON.stringify(value), { env: {}, baseDir: scratch });
    return parsed.principals.length === 0 ? ['the policy has no principal'] : [];
  } catch (err) {
    return [err instanceof Error ? err.message : String(err)];
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/**
 * deploy/kubernetes/base/nats.conf for a local nats-server: without what
 * belongs to a pod (cluster routes, ports, paths, the advertised name),
 * with local TLS files and the passwords filled in, and with `extra`, an
 * unrestricted user of the ckpt account that only a test has.
 */
export function localNatsConfig(
  conf: string,
  tls: { cert: string; key: string; ca: string },
  passwords: Record<string, string>,
  extra: { user: string; password: string },
): string {
  let text = conf
    .replace(/^cluster \{[\s\S]*?^\}$/m, '')
    .replace(/^(server_name|port|http_port|pid_file|client_advertise|lame_duck_\w+):.*$/gm, '')
    .replace(/^\s*store_dir:.*$/m, '')
    .replaceAll('/etc/nats/tls/tls.crt', tls.cert)
    .replaceAll('/etc/nats/tls/tls.key', tls.key)
    .replaceAll('/etc/nats/tls/ca.crt', tls.ca);
  for (const [name, value] of Object.entries(passwords)) text = text.replaceAll(`$${name}`, `"${value}"`);
  const code = text.replace(/#.*$/gm, '').replace(/"[^"]*"/g, '');
  if (/\$[A-Z_]+/.test(code)) throw new Error(`a variable of nats.conf is left:\n${text}`);
  const users = '    users: [\n';
  if (!text.includes(users)) throw new Error('nats.conf has no users list of the ckpt account');
  return text.replace(users, `${users}      { user: ${extra.user}, password: "${extra.password}" }\n`);
}
