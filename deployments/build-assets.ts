/**
 * Second half of `npm run build`: copies the non-TypeScript contracts (Avro schemas, the
 * record JSON Schema, SQL migrations) beside the compiled code and writes
 * dist/build-info.json — the build metadata /liveness reports (the design's ldflags).
 */
import { cpSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readBuildInfo } from '../core/build-info.js';
import { repoRoot } from './local/servers.js';

const dist = join(repoRoot, 'dist');
for (const assets of ['schemas/avro', 'schemas/company.schema.json', 'sinks/postgres/migrations', 'monitoring/public']) {
  const from = join(repoRoot, assets);
  if (existsSync(from)) cpSync(from, join(dist, assets), { recursive: true });
}
const info = readBuildInfo({ ...process.env, BUILD_TIME: process.env.BUILD_TIME ?? new Date().toISOString() });
writeFileSync(join(dist, 'build-info.json'), `${JSON.stringify(info, null, 2)}\n`);
process.stdout.write(`build ${info.version} ${info.commit.slice(0, 12)} (${info.branch}) at ${info.build_time}\n`);
