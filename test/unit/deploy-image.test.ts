/**
 * The image of deploy/image/Dockerfile, as far as it can be checked without
 * a container runtime: what its build copies exists and passes its
 * .dockerignore, its build run on that context alone writes the files the
 * Kubernetes manifests run (and they start), the runtime stage runs as the
 * manifests' non-root user, and nothing the compiled code imports is a dev
 * dependency, which the image prunes. Not checked here: that the base
 * images exist and `npm ci` succeeds in them, and that the image starts.
 */
import { builtinModules } from 'node:module';
import { cp, readFile, readdir, symlink } from 'node:fs/promises';
import { join, relative } from 'node:path';
import test from 'ava';
import {
  REPO_ROOT,
  containersOf,
  hasKubectl,
  makeScratch,
  removeScratch,
  renderKustomization,
} from '../helpers/kubernetes-manifests.js';
import { runTool } from '../helpers/run-tool.js';

const IMAGE_DIR = join(REPO_ROOT, 'deploy/image');

// Tests are declared after this, all at once, as ava wants.
const kubectl = await hasKubectl();
const run = kubectl ? test : test.skip;
const skipped = kubectl ? '' : ' (skipped: kubectl is not installed)';

/** One instruction of a Dockerfile, continuation lines joined. */
interface Instruction {
  op: string;
  args: string;
}

/** One stage: its base image, its name, its instructions. */
interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** The stages of a Dockerfile (the global ARGs before the first FROM substituted into FROM lines). */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
  const args = new Map<string, string>();
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const argText = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const [image = '', as, name] = argText.replace(/\$\{(\w+)\}/g, (_, n: string) => args.get(n) ?? '').split(' ');
      stages.push({ from: image, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length === 0 && op.toUpperCase() === 'ARG') {
      const [name = '', value = ''] = argText.split('=');
      args.set(name, value);
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args: argText });
    }
  }
  return stages;
}

/** A COPY's `--flags`, sources and destination. */
function copyOf(instruction: Instruction): { from: string | undefined; sources: string[]; dest: string } {
  const words = instruction.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' };
}

/**
 * Whether `path` (relative to the context) gets into the context under
 * `patterns`. Only `*` and `!<path>` are understood; anything else throws,
 * so that a pattern this check cannot judge fails the test instead of
 * passing it.
 */
function inContext(patterns: readonly string[], path: string): boolean {
  let included = true;
  for (const pattern of patterns) {
    if (pattern === '*') included = false;
    else if (/^![\w./-]+$/.test(pattern)) {
      const p = pattern.slice(1);
      if (path === p || path.startsWith(`${p}/`)) included = true;
    } else throw new Error(`Dockerfile.dockerignore: this test understands only * and !path, not ${pattern}`);
  }
  return included;
}

async function readImage(): Promise<{ stages: Stage[]; ignore: string[] }> {
  const [dockerfile, ignore] = await Promise.all([
    readFile(join(IMAGE_DIR, 'Dockerfile'), 'utf8'),
    readFile(join(IMAGE_DIR, 'Dockerfile.dockerignore'), 'utf8'),
  ]);
  const patterns = ignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  return { stages: parseDockerfile(dockerfile), ignore: patterns };
}

/** The stage that builds (named build) and the final one. */
function buildAndFinal(stages: readonly Stage[]): { build: Stage; final: Stage } {
  const build = stages.find((s) => s.name === 'build');
  const final = stages.at(-1);
  if (build === undefined || final === undefined)
    throw new Error('the Dockerfile has no stage build or no final stage');
  return { build, final };
}

test('every COPY from the build context exists in the repository and passes Dockerfile.dockerignore', async (t) => {
  const { stages, ignore } = await readImage();
  const sources = stages.flatMap((s) =>
    s.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD').map((i) => ({ op: i.op, ...copyOf(i) })),
  );
  t.true(sources.length > 0);
  for (const { op, from, sources: paths } of sources) {
    t.not(op, 'ADD', 'COPY, not ADD');
    if (from !== undefined) {
      t.true(
        stages.some((s) => s.name === from),
        `--from=${from} names a stage`,
      );
      continue;
    }
    for (const path of paths) {
      const normalised = relative('.', path.replace(/\/$/, '')) || '.';
      t.true(inContext(ignore, normalised), `${path} is left out of the context by Dockerfile.dockerignore`);
      await t.notThrowsAsync(
        readFile(join(REPO_ROOT, normalised)).catch(async (err: NodeJS.ErrnoException) => {
          if (err.code === 'EISDIR') return readdir(join(REPO_ROOT, normalised));
          throw err;
        }),
        `${path} exists`,
      );
    }
  }
  for (const path of ['node_modules', 'dist', '.tmp', '.git', 'deploy/kubernetes', 'test']) {
    t.false(inContext(ignore, path), `${path} stays out of the context`);
  }
});

test('the runtime stage: node:20-bookworm-slim, a numeric non-root user, no secret in ENV or ARG', async (t) => {
  const { stages } = await readImage();
  const { build, final } = buildAndFinal(stages);
  t.is(build.from, 'node:20-bookworm-slim');
  t.is(final.from, 'node:20-bookworm-slim');
  const user = final.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? '';
  t.regex(user, /^[1-9]\d*(:[1-9]\d*)?$/, 'USER is a numeric uid other than 0');
  const named = stages.flatMap((s) => s.instructions.filter((i) => i.op === 'ENV' || i.op === 'ARG'));
  t.deepEqual(
    named.filter((i) => /PASSWORD|TOKEN|SECRET|_KEY\b|PRIVATE/i.test(i.args)),
    [],
  );
  t.true(
    build.instructions.some((i) => i.op === 'RUN' && /npm prune --omit=dev/.test(i.args)),
    'dev dependencies are pruned',
  );
});

test('what src and the word count import at run time is a dependency (the image prunes dev dependencies)', async (t) => {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const files = [
    ...(await readdir(join(REPO_ROOT, 'src'), { recursive: true })).map((f) => join('src', f)),
    ...(await readdir(join(REPO_ROOT, 'examples/wordcount'))).map((f) => join('examples/wordcount', f)),
  ].filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const outside: string[] = [];
  for (const file of files) {
    const text = await readFile(join(REPO_ROOT, file), 'utf8');
    // Value imports and dynamic imports; `import type` leaves nothing in the compiled file.
    const specifiers = [
      ...text.matchAll(/^import (?!type )[^;]*?from '([^']+)'/gms),
      ...text.matchAll(/^export (?!type )[^;]*?from '([^']+)'/gms),
      ...text.matchAll(/import\('([^']+)'\)/g),
    ].map((m) => m[1] ?? '');
    for (const specifier of specifiers) {
      if (specifier.startsWith('.') || specifier.startsWith('node:') || builtinModules.includes(specifier)) continue;
      const name = specifier.startsWith('@')
        ? specifier.split('/').slice(0, 2).join('/')
        : (specifier.split('/')[0] ?? '');
      if (!(name in pkg.dependencies)) outside.push(`${file}: ${specifier}`);
    }
  }
  t.true(files.length > 100, 'the sources were found');
  t.deepEqual(outside, []);
});

run(
  `the build stage's make build on the context alone writes what the manifests run, and it starts${skipped}`,
  async (t) => {
    const makefile = await readFile(join(REPO_ROOT, 'Makefile'), 'utf8');
    const recipe = /^build: .*\n((?:\t.*\n)+)/m.exec(makefile)?.[1];
    t.is(
      recipe,
      '\tnpx tsc -p tsconfig.json\n\tnpm run --silent bundle:worker\n' +
        '\tcp examples/wordcount/start-worker.sh dist/examples/wordcount/start-worker.sh\n',
      'make build is what this test runs',
    );
    const { stages, ignore } = await readImage();
    const { build, final } = buildAndFinal(stages);
    const scratch = await makeScratch();
    t.teardown(() => removeScratch(scratch));
    // The context: the COPY sources of the build stage, as the .dockerignore lets them in.
    for (const { from, sources } of build.instructions.filter((i) => i.op === 'COPY').map(copyOf)) {
      if (from !== undefined) continue;
      for (const source of sources) {
        t.true(inContext(ignore, source));
        await cp(join(REPO_ROOT, source), join(scratch, source), { recursive: true });
      }
    }
    await symlink(join(REPO_ROOT, 'node_modules'), join(scratch, 'node_modules'));
    const built = await runTool('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: scratch });
    t.true(built.ok, built.out);
    // package.json is copied before the sources; its bundle:worker is what make build runs next.
    const bundled = await runTool('npm', ['run', '--silent', 'bundle:worker'], { cwd: scratch });
    t.true(bundled.ok, bundled.out);
    const launcher = await runTool(
      'cp',
      ['examples/wordcount/start-worker.sh', 'dist/examples/wordcount/start-worker.sh'],
      { cwd: scratch },
    );
    t.true(launcher.ok, launcher.out);
    const dashboard = build.instructions.find((i) => i.op === 'RUN' && i.args.includes('make build'));
    t.truthy(dashboard, 'a RUN makes the build');
    const after = dashboard?.args.split('&&').slice(1).join('&&').trim() ?? '';
    const copied = await runTool('bash', ['-c', after], { cwd: scratch });
    t.true(copied.ok, copied.out);

    // What the runtime stage takes from the build stage, as paths under its WORKDIR.
    const workdir = final.instructions.filter((i) => i.op === 'WORKDIR').at(-1)?.args;
    const taken = final.instructions
      .filter((i) => i.op === 'COPY')
      .map(copyOf)
      .filter((c) => c.from === 'build')
      .map((c) => relative(workdir ?? '/', join(workdir ?? '/', c.dest)));
    t.true(taken.includes('dist') && taken.includes('node_modules') && taken.includes('package.json'));
    t.true(
      final.instructions.some((i) => i.op === 'COPY' && /\/usr\/local\/bin\/etcdctl$/.test(i.args)),
      'etcdctl for the Job etcd-auth-setup',
    );
    t.truthy(await readFile(join(scratch, 'dist/src/dashboard/index.html')), 'the dashboard files are in dist');

    let checked = 0;
    for (const dir of ['base', 'examples/wordcount']) {
      for (const { owner, container } of containersOf(await renderKustomization(dir, scratch))) {
        const c = container as typeof container & { image?: string; workingDir?: string };
        if (!(c.image ?? '').endsWith('/ckpt:0.1.0')) continue;
        const command = c.command ?? [];
        // A shell runs a script of the image's dist (the word count worker's start-worker.sh) or its own.
        if (command[0] === 'sh' && !(command[1] ?? '').startsWith('dist/')) {
          checked++;
          continue;
        }
        t.is(c.workingDir, workdir, `${owner}: the image's WORKDIR`);
        t.true(command[0] === 'node' || command[0] === 'sh', `${owner} runs node, or a script of dist`);
        const file = command[1] ?? '';
        t.true(
          taken.some((p) => file === p || file.startsWith(`${p}/`)),
          `${owner}: ${file} is in the runtime stage`,
        );
        await t.notThrowsAsync(readFile(join(scratch, file)), `${owner}: make build writes ${file}`);
        checked++;
      }
    }
    t.true(checked >= 5, 'coordinators, workers, the submit Job and etcd-auth-setup');

    const help = await runTool('node', ['dist/src/cli/main.js', 'coordinator', '--help'], { cwd: scratch });
    t.true(help.ok && help.out.includes('--tls-client-ca'), help.out);
    const worker = await runTool('node', ['dist/examples/wordcount/bundled-worker.js'], { cwd: scratch });
    t.regex(worker.out, /usage: worker\.ts/, 'the bundled worker loads and asks for its flags');
    // The manifests' worker command: from the startup snapshot the build wrote, with no line of the launcher's own.
    const fromSnapshot = await runTool('sh', ['dist/examples/wordcount/start-worker.sh'], { cwd: scratch });
    t.regex(fromSnapshot.out, /usage: worker\.ts/, 'the worker starts from its snapshot and asks for its flags');
    t.notRegex(fromSnapshot.out, /^start-worker:/m, 'the snapshot loads: start-worker.sh does not fall back');
  },
);
