/**
 * The database's ceilings, measured with the sink's own code: the rows COPY'd in one
 * transaction, and the company writer alone; and the generated file read back the way the
 * pipeline reads it, to give them their rows.
 */
import { createReadStream } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createPostgres } from '../../core/postgres.js';
import {
  companyColumnNames,
  companyRows,
  copyRows,
  createCompanyWriter,
  officeColumnNames,
  roundColumnNames,
  type SinkRecord,
  type WriteMethod,
} from '../../sinks/postgres/index.js';
import { normalizeRecord } from '../../topology/etl/normalize.js';
import { validateRecord } from '../../topology/etl/validate-record.js';
import { cpuMeter, findPids, type CpuReport } from '../lib/proc.js';
import { MiB, config, settings } from './settings.js';

// ---------------------------------------------------------------------------------------------
// Records as the load stage hands them to the sink

/** One valid record as the pipeline would store it: its normalised document and where it came from. */
export interface ValidRecord {
  index: number;
  permalink: string;
  /** JSON text of the normalised document (what RecordExtracted carries). */
  json: string;
}

export interface Source {
  requestId: string;
  bucket: string;
  key: string;
  acceptedAt: number;
}

/** A record as the load sink's toSinkRecord makes it: the document parsed from RecordValidated's JSON text. */
export function sinkRecord(tenant: string, record: ValidRecord, source: Source, offset: string): SinkRecord {
  return {
    tenant,
    permalink: record.permalink,
    document: JSON.parse(record.json) as Record<string, unknown>,
    documentJson: record.json,
    source: { requestId: source.requestId, bucket: source.bucket, key: source.key, recordIndex: record.index, acceptedAt: source.acceptedAt },
    offset,
  };
}

// ---------------------------------------------------------------------------------------------
// The generated file, read back the way the pipeline reads it

export interface Prepared {
  /** Every valid record in file order (duplicates included): what the load stage receives. */
  valid: ValidRecord[];
  /** Valid records, duplicates collapsed last-wins: the rows. */
  rows: ValidRecord[];
  invalid: number;
  seconds: { parse: number; normalize: number; validate: number; stringify: number; total: number };
}

export async function prepareRecords(file: string): Promise<Prepared> {
  const started = performance.now();
  const seconds = { parse: 0, normalize: 0, validate: 0, stringify: 0, total: 0 };
  const valid: ValidRecord[] = [];
  const last = new Map<string, ValidRecord>();
  let invalid = 0;
  let index = 0;
  const lines = createInterface({ input: createReadStream(file, { highWaterMark: MiB }), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    let t = performance.now();
    const raw: unknown = JSON.parse(line);
    seconds.parse += performance.now() - t;
    t = performance.now();
    const document = normalizeRecord(raw);
    seconds.normalize += performance.now() - t;
    t = performance.now();
    const json = JSON.stringify(document);
    seconds.stringify += performance.now() - t;
    t = performance.now();
    // As the validate stage does: it parses RecordExtracted's JSON text, then validates.
    const result = validateRecord(JSON.parse(json));
    seconds.validate += performance.now() - t;
    if (result.valid) {
      const record: ValidRecord = { index, permalink: String((document as Record<string, unknown>).permalink), json };
      valid.push(record);
      last.set(record.permalink, record);
    } else {
      invalid++;
    }
    index++;
  }
  seconds.parse /= 1000;
  seconds.normalize /= 1000;
  seconds.validate /= 1000;
  seconds.stringify /= 1000;
  seconds.total = (performance.now() - started) / 1000;
  return { valid, rows: [...last.values()], invalid, seconds };
}

// ---------------------------------------------------------------------------------------------
// Ceilings

export interface CopyResult {
  tenant: string;
  companies: number;
  offices: number;
  rounds: number;
  seconds: number;
  rowsPerSecond: number;
  cpu: CpuReport;
}

export async function copyCeiling(tenant: string, rows: ValidRecord[], source: Source, groups: () => Record<string, number[]>): Promise<CopyResult> {
  const client = new pg.Client({
    host: config.postgres.host,
    port: config.postgres.port,
    database: config.postgres.database,
    user: config.postgres.user,
    password: config.postgres.password,
    application_name: 'bench-pipeline-copy',
  });
  await client.connect();
  try {
    await client.query('BEGIN');
    const stop = cpuMeter(groups(), () => ({ postgres: findPids(new Set()).postgres }));
    const started = performance.now();
    // The sink's own mapping and COPY text, so the ceiling cannot drift from what the sink writes.
    const mapped = rows.map((record) => {
      const prepared = companyRows(sinkRecord(tenant, record, source, '0'));
      if (typeof prepared === 'string') throw new Error(`the sink refuses ${record.permalink}: ${prepared}`);
      return prepared;
    });
    const offices = mapped.flatMap((item) => item.offices);
    const rounds = mapped.flatMap((item) => item.rounds);
    await copyRows(
      client,
      'companies',
      companyColumnNames,
      mapped.map((item) => item.company),
    );
    await copyRows(client, 'company_offices', officeColumnNames, offices);
    await copyRows(client, 'company_funding_rounds', roundColumnNames, rounds);
    await client.query('COMMIT');
    const companies = mapped.length;
    const officeRows = offices.length;
    const roundRows = rounds.length;
    const seconds = (performance.now() - started) / 1000;
    const cpu = stop();
    return { tenant, companies, offices: officeRows, rounds: roundRows, seconds, rowsPerSecond: companies / seconds, cpu };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    await client.end();
  }
}

export interface WriterResult {
  /** Absent in results of runs before the `copy` way existed: those used `insert`. */
  method?: WriteMethod;
  tenant: string;
  records: number;
  rows: number;
  batches: number;
  seconds: number;
  rowsPerSecond: number;
  recordsPerSecond: number;
  inserted: number;
  updated: number;
  collapsed: number;
  rejected: number;
  cpu: CpuReport;
}

export async function writerCeiling(
  tenant: string,
  group: string,
  method: WriteMethod,
  valid: ValidRecord[],
  source: Source,
  groups: () => Record<string, number[]>,
): Promise<WriterResult> {
  const postgres = createPostgres(config.postgres, { applicationName: 'bench-pipeline-writer' });
  try {
    const writer = createCompanyWriter(postgres, { method });
    const result = { inserted: 0, updated: 0, collapsed: 0, rejected: 0, batches: 0 };
    let seconds = 0;
    const stop = cpuMeter(groups(), () => ({ postgres: findPids(new Set()).postgres }));
    for (let start = 0; start < valid.length; start += settings.writerBatch) {
      const slice = valid.slice(start, start + settings.writerBatch);
      const records = slice.map((record, i) => sinkRecord(tenant, record, source, String(start + i)));
      const began = performance.now();
      const written = await writer.writeBatch({
        consumerGroup: group,
        topic: 'bench-pipeline',
        partition: 0,
        records,
        nextOffset: String(start + slice.length),
      });
      seconds += (performance.now() - began) / 1000;
      result.inserted += written.inserted;
      result.updated += written.updated;
      result.collapsed += written.collapsed;
      result.rejected += written.rejected.length;
      result.batches++;
    }
    const cpu = stop();
    const rows = (await postgres.db.one<{ n: number }>('SELECT count(*)::int AS n FROM companies WHERE tenant = $1', [tenant])).n;
    return { method, tenant, records: valid.length, rows, seconds, rowsPerSecond: rows / seconds, recordsPerSecond: valid.length / seconds, cpu, ...result };
  } finally {
    await postgres.close();
  }
}
