/**
 * Uploads a file, or every .json/.ndjson/.jsonl file of a folder, to the ingress, streaming
 * each from disk, with a progress bar and a summary.
 *
 *   npm run import -- <tenant> <file-or-folder> [--url http://127.0.0.1:3000] [--token T] [--concurrency 4]
 */
import { createReadStream, readdirSync, statSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { Transform } from 'node:stream';
import { request } from 'undici';

const args = process.argv.slice(2);
function option(name: string, fallback: string): string {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = args[index + 1];
  args.splice(index, 2);
  return value ?? fallback;
}
const url = option('url', process.env.INGRESS_URL ?? 'http://127.0.0.1:3000').replace(/\/+$/, '');
const token = option('token', process.env.TOKEN ?? '');
const concurrency = Math.max(1, Number(option('concurrency', '4')));
const [tenant, target] = args;
if (tenant === undefined || target === undefined) {
  process.stderr.write('usage: npm run import -- <tenant> <file-or-folder> [--url U] [--token T] [--concurrency N]\n');
  process.exit(2);
}

const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((name) => ['.json', '.ndjson', '.jsonl'].includes(extname(name)))
      .sort()
      .map((name) => join(target, name))
  : [target];
const totalBytes = files.reduce((sum, file) => sum + statSync(file).size, 0);
let sentBytes = 0;
const started = Date.now();

function drawProgress(done: number): void {
  if (!process.stderr.isTTY) return;
  const width = 30;
  const ratio = totalBytes === 0 ? 1 : sentBytes / totalBytes;
  const filled = Math.round(ratio * width);
  const mbps = sentBytes / 1e6 / Math.max(0.001, (Date.now() - started) / 1000);
  process.stderr.write(
    `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%  ${done}/${files.length} files  ${mbps.toFixed(1)} MB/s`,
  );
}

interface Outcome {
  file: string;
  status: number;
  body: any;
}

async function upload(file: string): Promise<Outcome> {
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      sentBytes += chunk.length;
      callback(null, chunk);
    },
  });
  const headers: Record<string, string> = {
    'content-type': ['.ndjson', '.jsonl'].includes(extname(file)) ? 'application/x-ndjson' : 'application/json',
    'content-length': String(statSync(file).size),
    'x-filename': encodeURIComponent(basename(file)),
  };
  if (token !== '') headers.authorization = `Bearer ${token}`;
  try {
    const response = await request(`${url}/import/${tenant}`, {
      method: 'POST',
      headers,
      body: createReadStream(file).pipe(counter),
    });
    const text = await response.body.text();
    return { file, status: response.statusCode, body: text === '' ? null : JSON.parse(text) };
  } catch (error) {
    return { file, status: 0, body: { error: { code: 'CONNECTION_FAILED', message: (error as Error).message } } };
  }
}

const outcomes: Outcome[] = [];
const queue = [...files];
await Promise.all(
  Array.from({ length: Math.min(concurrency, files.length) }, async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      outcomes.push(await upload(file));
      drawProgress(outcomes.length);
    }
  }),
);
if (process.stderr.isTTY) process.stderr.write('\n');

const accepted = outcomes.filter((outcome) => outcome.status === 202);
for (const outcome of outcomes) {
  const detail =
    outcome.status === 202
      ? `${outcome.body.records} records  ${outcome.body.request_id}`
      : `${outcome.body?.error?.code ?? 'ERROR'}: ${outcome.body?.error?.message ?? ''}`;
  process.stdout.write(`${outcome.status === 202 ? 'ok  ' : 'FAIL'}  ${outcome.status}  ${basename(outcome.file)}  ${detail}\n`);
}
const seconds = (Date.now() - started) / 1000;
process.stdout.write(
  `\n${accepted.length}/${outcomes.length} files accepted, ` +
    `${accepted.reduce((sum, outcome) => sum + Number(outcome.body.records), 0)} records, ` +
    `${(totalBytes / 1e6).toFixed(1)} MB in ${seconds.toFixed(1)} s\n`,
);
process.exitCode = accepted.length === outcomes.length ? 0 : 1;
