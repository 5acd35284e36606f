/**
 * The Kubernetes manifests in deploy/kubernetes render, are valid objects
 * of the Kubernetes API with no misspelled field, and carry a NATS config
 * that nats-server accepts. `make deploy-check` runs this file alone.
 * Without kubectl the tests are skipped, and say so in their titles.
 */
import test from 'ava';
import {
  KUSTOMIZATIONS,
  checkNatsConfig,
  describeObject,
  hasKubectl,
  makeScratch,
  removeScratch,
  renderKustomization,
  schemaProblem,
  typeCheck,
  typedSource,
  type KubeObject,
} from '../helpers/kubernetes-manifests.js';

const kubectl = await hasKubectl();
const run = kubectl ? test : test.skip;
const skipped = kubectl ? '' : ' (skipped: kubectl is not installed)';

const scratch = await makeScratch();
test.after.always(() => removeScratch(scratch));

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
