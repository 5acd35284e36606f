/**
 * The Kubernetes manifests in deploy/kubernetes render, are valid objects
 * of the Kubernetes API with no misspelled field, and carry a NATS config
 * that nats-server accepts; the flags and variables they give ckpt exist;
 * what pods mount exists and holds every file their flags name; every
 * container is hardened; the access policy parses.
 * `make deploy-check` runs this file alone.
 * Without kubectl the tests are skipped, and say so in their titles.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { describeOptions } from '../../src/config/index.js';
import {
  KUSTOMIZATIONS,
  REPO_ROOT,
  accessPolicyProblems,
  checkNatsConfig,
  containersOf,
  describeObject,
  fileProblems,
  flagsOf,
  hasKubectl,
  makeScratch,
  missingReferences,
  removeScratch,
  renderKustomization,
  schemaProblem,
  securityProblems,
  typeCheck,
  typedSource,
  type KubeObject,
} from '../helpers/kubernetes-manifests.js';
import { runTool } from '../helpers/run-tool.js';

const kubectl = await hasKubectl();
const run = kubectl ? test : test.skip;
const skipped = kubectl ? '' : ' (skipped: kubectl is not installed)';

// Where rendered files and the type-checked module go; only made when the tests run.
const scratch = kubectl ? await makeScratch() : '';
if (kubectl) test.after.always(() => removeScratch(scratch));

/** Each kustomization rendered once, shared by the tests. */
const rendered = new Map<string, Promise<KubeObject[]>>(
  kubectl ? KUSTOMIZATIONS.map((dir) => [dir, renderKustomization(dir, scratch)]) : [],
);

async function objectsOf(dir: string): Promise<KubeObject[]> {
  const objects = await rendered.get(dir);
  if (objects === undefined) throw new Error(`${dir} was not rendered`);
  return objects;
}

for (const dir of KUSTOMIZATIONS) {
  run(
    `deploy/kubernetes/${dir} renders, and each object validates against the Kubernetes schemas${skipped}`,
    async (t) => {
      const objects = await objectsOf(dir);
      t.true(objects.length > 0);
      const problems = (await Promise.all(objects.map(schemaProblem))).filter((p) => p !== undefined);
      t.deepEqual(problems, []);
      const names = objects.map(describeObject);
      t.deepEqual(
        names.filter((n, i) => names.indexOf(n) !== i),
        [],
        'no object twice',
      );
    },
  );
}

for (const dir of KUSTOMIZATIONS) {
  run(
    `deploy/kubernetes/${dir}: every Secret, ConfigMap and key a pod mounts or reads exists, and every file its flags, environment and configs name lies in a mount of its container${skipped}`,
    async (t) => {
      const objects = await objectsOf(dir);
      t.deepEqual(missingReferences(objects), []);
      t.deepEqual(fileProblems(objects), []);
    },
  );

  run(
    `deploy/kubernetes/${dir}: every container runs as non-root on a read-only root, no capability, RuntimeDefault seccomp, a tagged image${skipped}`,
    async (t) => {
      const objects = await objectsOf(dir);
      t.deepEqual(securityProblems(objects), []);
      const untagged = containersOf(objects)
        .map(({ owner, container }) => ({ owner, image: (container as { image?: string }).image ?? '' }))
        .filter(({ image }) => !/^[\w.-]+(\/[\w.-]+)*:[\w.-]+$/.test(image));
      t.deepEqual(untagged, [], 'images are named with a tag (an images: entry reached them)');
    },
  );

  run(
    `deploy/kubernetes/${dir}: the access policy of ConfigMap ckpt-access-policy passes the coordinator's parseAccessPolicy${skipped}`,
    async (t) => {
      t.deepEqual(await accessPolicyProblems(await objectsOf(dir)), []);
    },
  );
}

run(`every rendered object type-checks against kubernetes-types (no unknown field)${skipped}`, async (t) => {
  const objects = (
    await Promise.all(
      KUSTOMIZATIONS.map(async (dir) => (await objectsOf(dir)).map((object) => ({ origin: dir, object }))),
    )
  ).flat();
  const checked = await typeCheck(typedSource(objects), scratch);
  t.true(checked.ok, checked.out);
});

run(
  `the NATS config of the ConfigMap passes nats-server -t with the environment of the NATS pods${skipped}`,
  async (t) => {
    const checked = await checkNatsConfig(await objectsOf('base'), scratch);
    t.true(checked.ok, checked.out);
  },
);

run(`the flags and CKPT_ variables the manifests give coordinators and workers exist${skipped}`, async (t) => {
  const help = await runTool('node', ['--import', 'tsx', 'src/cli/main.ts', 'coordinator', '--help'], {
    cwd: REPO_ROOT,
  });
  t.true(help.ok, help.out);
  const workerSource = await readFile(join(REPO_ROOT, 'examples/wordcount/worker.ts'), 'utf8');
  const workerFlags = [...workerSource.matchAll(/^ {6}'?([a-z][a-z-]*)'?: \{ type: /gm)].map((m) => `--${m[1]}`);
  t.true(workerFlags.includes('--coordinator'), 'the flags of worker.ts were found');
  const variables = new Set(describeOptions().map((o) => o.env));
  // What a worker reads of the environment: the client TLS, the NATS credentials, the token, the word count's metrics address.
  const [clientTls, natsAuth, sdkOptions] = await Promise.all(
    ['src/client/tls.ts', 'src/bus/nats-auth.ts', 'src/sdk/options.ts'].map((f) =>
      readFile(join(REPO_ROOT, f), 'utf8'),
    ),
  );
  const workerVariables = new Set(
    [
      ...(clientTls ?? '').matchAll(/value\('(CKPT_\w+)'\)/g),
      ...(natsAuth ?? '').matchAll(/\['\w+', '(CKPT_NATS_\w+)'\]/g),
      ...(sdkOptions ?? '').matchAll(/fromEnv\('(CKPT_\w+)'\)/g),
      ...workerSource.matchAll(/process\.env\.(CKPT_\w+)/g),
    ].map((m) => m[1] ?? ''),
  );
  let checked = 0;
  for (const { owner, container } of containersOf(await objectsOf('examples/wordcount'))) {
    const command = container.command ?? [];
    if (command.includes('dist/src/cli/main.js') && command.includes('coordinator')) {
      for (const flag of flagsOf(container.args)) t.true(help.out.includes(`${flag} `), `${owner}: no ${flag}`);
      for (const { name } of container.env ?? [])
        if (name.startsWith('CKPT_')) t.true(variables.has(name), `${owner}: no variable ${name}`);
      checked++;
    }
    if (command.includes('dist/examples/wordcount/start-worker.sh')) {
      for (const flag of flagsOf(container.args)) t.true(workerFlags.includes(flag), `${owner}: no ${flag}`);
      for (const { name } of container.env ?? [])
        if (name.startsWith('CKPT_')) t.true(workerVariables.has(name), `${owner}: no variable ${name}`);
      checked++;
    }
  }
  t.is(checked, 4, 'the coordinator and the three workers');
  for (const name of ['CKPT_TLS_CA', 'CKPT_NATS_USER', 'CKPT_TOKEN_FILE', 'CKPT_WORKER_METRICS'])
    t.true(workerVariables.has(name), `the variables of the worker SDK were found (${name})`);
});
