/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`, e.g. `BENCH_CPU_PROF=1 npm run bench:ingest`):
 * self time by package and the top functions by self time.
 *
 *   tsx bench/cpuprofile-top.ts bench/tmp/prof/CPU.*.cpuprofile [top=30]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const [file, topText = '30'] = process.argv.slice(2);
if (!Number.isInteger(Number(topText))) {
  process.stderr.write('usage: tsx bench/cpuprofile-top.ts <file.cpuprofile> [top]  (one file)\n');
  process.exit(2);
}
if (file === undefined) {
  process.stderr.write('usage: tsx bench/cpuprofile-top.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map<number, number>();
profile.samples.forEach((id, index) => {
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0));
});
const totalMicros = profile.endTime - profile.startTime;

/** node_modules/<pkg> (scoped too), node:internal, the project's own folder, or (program)/(gc)/(idle). */
function packageOf(node: ProfileNode): string {
  const { url, functionName } = node.callFrame;
  if (url === '') return `(${functionName.replace(/[()]/g, '') || 'native'})`;
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url.replaceAll('\\', '/'));
  if (match?.[1] !== undefined) {
    // The last node_modules segment names the package that owns the code.
    const all = [...url.matchAll(/node_modules\/((?:@[^/]+\/)?[^/]+)/g)];
    return all.at(-1)?.[1] ?? match[1];
  }
  if (url.startsWith('node:')) return url.split('/').slice(0, 2).join('/');
  const project = /\/work\/main\/([^/]+)\//.exec(url);
  return project?.[1] === undefined ? url : `project:${project[1]}`;
}

const byPackage = new Map<string, number>();
const byFunction = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  const node = byId.get(id);
  if (node === undefined) continue;
  const pkg = packageOf(node);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
  const file = node.callFrame.url.replace(/^.*node_modules\/(?:@[^/]+\/)?[^/]+\//, '').replace(/^file:\/\/\/work\/main\//, '');
  const name = `${node.callFrame.functionName || '(anonymous)'} ${pkg}:${file}:${node.callFrame.lineNumber + 1}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
}

// Node's own code (http client, streams, crypto, timers) charged to the nearest package up the
// stack that called it: how much each dependency really costs, not just its own lines.
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
const isNodeOwn = (pkg: string) => pkg.startsWith('node:') || (pkg.startsWith('(') && !['(idle)', '(garbage collector)', '(program)'].includes(pkg));
const byOwner = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  const leaf = byId.get(id);
  if (leaf === undefined) continue;
  let owner = packageOf(leaf);
  let current: number | undefined = id;
  while (current !== undefined && isNodeOwn(owner)) {
    const node = byId.get(current);
    if (node !== undefined && !isNodeOwn(packageOf(node)) && packageOf(node) !== '(root)') {
      owner = packageOf(node);
      break;
    }
    current = parentOf.get(current);
  }
  byOwner.set(owner, (byOwner.get(owner) ?? 0) + micros);
}

// Whole subsystems: a sample belongs to the first of these found walking from the leaf to the root.
const categories: Array<[string, RegExp]> = [
  ['S3 client (@aws-sdk, @smithy)', /^@aws-sdk\/|^@smithy\/|^@aws-crypto\//],
  // The Kafka client's JavaScript layer (librdkafka itself runs on native threads, outside this
  // profile of the main thread), Avro and the schema registry client (@kafkajs/confluent-schema-registry).
  ['Kafka (@confluentinc/kafka-javascript, avsc, registry client)', /^@confluentinc\/kafka-javascript$|^avsc$|^@kafkajs\//],
  ['metrics (prom-client)', /^prom-client$/],
  ['logging (pino)', /^pino/],
  ['start-up (tsx, module loading)', /^tsx$|^node:internal\/modules/],
  ['project code', /^project:/],
];
const byCategory = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  let category: string | undefined;
  for (let current: number | undefined = id; current !== undefined && category === undefined; current = parentOf.get(current)) {
    const node = byId.get(current);
    if (node === undefined) break;
    const pkg = packageOf(node);
    category = categories.find(([, pattern]) => pattern.test(pkg))?.[0];
  }
  const leaf = byId.get(id);
  category ??= leaf === undefined ? '?' : `other: ${packageOf(leaf)}`;
  byCategory.set(category, (byCategory.get(category) ?? 0) + micros);
}

const top = Number(topText);
const percent = (micros: number) => `${((micros / totalMicros) * 100).toFixed(1).padStart(5)}%`;
process.stdout.write(`profile: ${(totalMicros / 1e6).toFixed(2)} s\n\nself time by package:\n`);
for (const [pkg, micros] of [...byPackage].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  process.stdout.write(`  ${percent(micros)}  ${pkg}\n`);
}
process.stdout.write('\nby subsystem (a sample counts for the nearest of these up its stack):\n');
for (const [category, micros] of [...byCategory].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  process.stdout.write(`  ${percent(micros)}  ${category}\n`);
}
process.stdout.write('\nself time with node internals charged to the calling package:\n');
for (const [pkg, micros] of [...byOwner].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  process.stdout.write(`  ${percent(micros)}  ${pkg}\n`);
}
process.stdout.write('\ntop functions by self time:\n');
for (const [name, micros] of [...byFunction].sort((x, y) => y[1] - x[1]).slice(0, top)) {
  process.stdout.write(`  ${percent(micros)}  ${name}\n`);
}
