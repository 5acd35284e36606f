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
