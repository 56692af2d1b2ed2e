/**
 * Runs the processor again on archived files, through the monitoring's API.
 *
 *   npm run replay -- --request-id <id> [--tenant <t>]
 *   npm run replay -- --tenant <t> [--since 2026-12-01] [--until 2026-12-03] [--run <id>]
 *
 * Options: --url (MONITORING_URL, default http://127.0.0.1:3002), --token (MONITORING_TOKEN).
 * A tenant's run shows files and records done as a progress bar until every replay is
 * accounted for; Ctrl-C stops the run between two files and prints the --run that resumes it.
 * Exit codes: 0 done, 1 some file could not be replayed or its replay failed in the pipeline (the
 * import's status `failed` is final too), 2 bad usage or a refused request.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { runSummary, runVerdict, type RunProgress } from './replay-progress.js';

const args = process.argv.slice(2);
function option(name: string): string | undefined {
  const index = args.indexOf(`--${name}`);
  if (index < 0) return undefined;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) usage(`--${name} needs a value`);
  return value;
}
function usage(problem: string): never {
  process.stderr.write(
    `${problem}\nusage: npm run replay -- --request-id <id> [--tenant <t>]\n` +
      '       npm run replay -- --tenant <t> [--since <date>] [--until <date>] [--run <id>]\n' +
      '       [--url http://127.0.0.1:3002] [--token <token>]\n',
  );
  process.exit(2);
}

const url = (option('url') ?? process.env.MONITORING_URL ?? 'http://127.0.0.1:3002').replace(/\/+$/, '');
const token = option('token') ?? process.env.MONITORING_TOKEN ?? '';
const requestId = option('request-id');
const tenant = option('tenant');
const [since, until, run] = [option('since'), option('until'), option('run')];
if (requestId === undefined && tenant === undefined) usage('name an import (--request-id) or a tenant (--tenant)');
if (requestId !== undefined && (since !== undefined || until !== undefined || run !== undefined))
  usage('--since, --until and --run go with a tenant run, not --request-id');

const headers: Record<string, string> = token === '' ? {} : { authorization: `Bearer ${token}` };

/** The fields of monitoring's answers this command reads (README, "Replay from the archive"). */
interface ErrorAnswer {
  error?: { code?: string; message?: string };
}
interface ReplayStarted {
  replay_request_id: string;
  records: number;
  status_url: string;
}
interface RunStarted {
  run_id: string;
  files: number;
}
interface Answer<T> {
  status: number;
  json: T;
}

async function call<T>(method: 'GET' | 'POST', path: string): Promise<Answer<T>> {
  const response = await request(`${url}${path}`, { method, headers });
  const text = await response.body.text();
  return { status: response.statusCode, json: (text === '' ? null : JSON.parse(text)) as T };
}

function refused(answer: Answer<unknown>): never {
  const error = (answer.json as ErrorAnswer | null)?.error ?? {};
  process.stderr.write(`refused (${answer.status}) ${error.code ?? ''}: ${error.message ?? JSON.stringify(answer.json)}\n`);
  process.exit(2);
}

function bar(done: number, total: number, width = 30): string {
  const ratio = total === 0 ? 1 : Math.min(1, done / total);
  const filled = Math.round(ratio * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}%`;
}

if (requestId !== undefined) {
  const answer = await call<ReplayStarted>(
    'POST',
    `/imports/${encodeURIComponent(requestId)}/replay${tenant === undefined ? '' : `?tenant=${encodeURIComponent(tenant)}`}`,
  );
  if (answer.status !== 202) refused(answer);
  process.stdout.write(`replaying ${requestId} as ${answer.json.replay_request_id} (${answer.json.records} records): ${url}${answer.json.status_url}\n`);
} else {
  const query = new URLSearchParams();
  if (since !== undefined) query.set('since', since);
  if (until !== undefined) query.set('until', until);
  if (run !== undefined) query.set('run', run);
  const started = await call<RunStarted>('POST', `/tenants/${encodeURIComponent(tenant!)}/replay?${query.toString()}`);
  if (started.status !== 202) refused(started);
  const runId = started.json.run_id;
  process.stdout.write(`run ${runId}: ${started.json.files} files of ${tenant}${run === undefined ? '' : ' (resumed)'}\n`);
  let stopping = false;
  process.once('SIGINT', () => {
    stopping = true;
    void call('POST', `/replays/${runId}/stop`);
  });
  let progress: RunProgress;
  let failures: string[];
  for (;;) {
    const answer = await call<RunProgress>('GET', `/replays/${runId}?tenant=${encodeURIComponent(tenant!)}`);
    if (answer.status !== 200) refused(answer);
    progress = answer.json;
    const line = `${bar(progress.files_done, progress.files)} files ${progress.files_done}/${progress.files}  records ${progress.records_done}/${progress.records_expected}`;
    process.stderr.write(process.stderr.isTTY ? `\r${line}` : `${line}\n`);
    const verdict = runVerdict(progress);
    failures = verdict.failures;
    if (verdict.settled || (stopping && progress.replays.every((replay) => replay.state !== 'emitting'))) break;
    await sleep(1000);
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  for (const failure of failures) process.stdout.write(`${failure}\n`);
  if (stopping) process.stdout.write(`stopped: resume with --tenant ${tenant} --run ${runId}\n`);
  process.stdout.write(`${runSummary(progress, failures.length)}\n`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}
