/**
 * The dependency rule (docs/architecture.md), checked by `npm run lint` (make check):
 *
 *   services  ingress/  monitoring/  topology/ (the processor: all of it but topology/lib/)
 *      ↓  never each other
 *   libraries core/ (platform: config, Kafka, S3, HTTP, codecs)  topology/lib/ (the stream library,
 *             through topology/lib/index.ts only)  sinks/
 *      ↓
 *   contracts schemas/ (Avro schemas, the record contract): import nothing of ours
 *
 * Tests, benchmarks, examples and deployment scripts sit beside the product and may use any of
 * it; product code never imports them.
 */
const services = { ingress: '^ingress/', monitoring: '^monitoring/', processor: '^topology/(?!lib/)' };
const service = Object.values(services).join('|');
const library = '^(core|sinks)/|^topology/lib/';

/** One rule per service: it may import no other service. */
const noServiceToService = Object.entries(services).map(([name, path]) => ({
  name: 'no-service-to-service',
  comment: `${name} uses libraries and contracts, never another service: move what both need into core/ or a library.`,
  severity: 'error',
  from: { path },
  to: {
    path: Object.entries(services)
      .filter(([other]) => other !== name)
      .map(([, otherPath]) => otherPath)
      .join('|'),
  },
}));

module.exports = {
  forbidden: [
    ...noServiceToService,
    {
      name: 'no-library-to-service',
      comment: 'Libraries serve the services; they never import one (a library that needs a service’s code needs that code moved down).',
      severity: 'error',
      from: { path: library, pathNot: '\\.test\\.ts$' },
      to: { path: service },
    },
    {
      name: 'contracts-import-nothing',
      comment: 'schemas/ is the contract every part agrees on: it imports nothing of the code.',
      severity: 'error',
      from: { path: '^schemas/', pathNot: '\\.test\\.ts$' },
      to: { path: '^(core|sinks|topology|ingress|monitoring|examples|bench|deployments|test)/' },
    },
    {
      name: 'stream-library-through-its-index',
      comment: 'Outside topology/, the stream library is used through topology/lib/index.ts: the rest of it is private.',
      severity: 'error',
      from: { path: '^(core|sinks|ingress|monitoring)/', pathNot: '\\.test\\.ts$' },
      to: { path: '^topology/lib/', pathNot: '^topology/lib/index\\.ts$' },
    },
    {
      name: 'product-never-imports-tooling',
      comment: 'Product code does not depend on tests, benchmarks, examples or deployment scripts.',
      severity: 'error',
      from: { path: '^(core|sinks|schemas|topology|ingress|monitoring)/', pathNot: '\\.test\\.ts$|/testing/' },
      to: { path: '^(test|bench|examples|deployments)/' },
    },
    {
      name: 'no-circular',
      comment: 'A cycle makes two modules one: break it by moving the shared part down.',
      severity: 'error',
      from: { path: '^(core|sinks|schemas|topology|ingress|monitoring)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|bench/tmp|\\.stack)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
