/**
 * The ETL topology, declared as data: split → extract → validate → load. Each stage is its own
 * consumer group over its input topic's partitions; `processor describe` prints it.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import { defaultPartitions, topics } from '../../core/pipeline.js';
import type { Postgres } from '../../core/postgres.js';
import { createLoadSink } from '../../sinks/postgres/index.js';
import { defineTopology, type Topology } from '../lib/types.js';
import { createExtract, s3ObjectOpener } from './extract.js';
import { createSplit } from './split.js';
import { validate } from './validate.js';

export interface EtlDeps {
  s3: S3Client;
  /** Only the load stage needs it; describe works without. */
  postgres?: () => Postgres;
  /** Records of one file per extract transaction (default 2000). */
  extractRecordsPerTransaction?: number;
  /** Partitions of FilePiece as the cluster reports them (the split stage spreads pieces over them); default defaultPartitions. */
  filePiecePartitions?: () => number;
}

export const stageNames = ['split', 'extract', 'validate', 'load'] as const;
export type StageName = (typeof stageNames)[number];

export function etlTopology(deps: EtlDeps): Topology {
  return defineTopology({
    name: 'etl',
    stages: [
      {
        kind: 'transform',
        name: 'split',
        doc: 'turns each accepted file into the pieces the ingress planned, spread over the partitions',
        input: topics.fileExtractSuccess.name,
        outputs: { pieces: topics.filePiece.name },
        errors: topics.processingError.name,
        messagesPerTransaction: 100,
        process: createSplit(deps.filePiecePartitions ?? (() => defaultPartitions)),
      },
      {
        kind: 'transform',
        name: 'extract',
        doc: 'streams each piece of a file from S3 (a ranged GET) and splits it into normalised records',
        input: topics.filePiece.name,
        outputs: { records: topics.recordExtracted.name, summary: topics.fileExtracted.name },
        errors: topics.processingError.name,
        // Small pieces share a transaction; a big one is committed in several, so validate and
        // load start on its first records while the rest is still being extracted.
        messagesPerTransaction: 100,
        maxOutputsPerTransaction: deps.extractRecordsPerTransaction ?? 2000,
        process: createExtract(s3ObjectOpener(deps.s3)),
      },
      {
        kind: 'transform',
        name: 'validate',
        doc: 'checks each record against schemas/company.schema.json',
        input: topics.recordExtracted.name,
        outputs: { valid: topics.recordValidated.name, invalid: topics.validationError.name },
        errors: topics.processingError.name,
        messagesPerTransaction: 1000,
        process: validate,
      },
      {
        kind: 'sink',
        name: 'load',
        doc: 'upserts valid records into Postgres in batches, offsets stored in the same transaction',
        input: topics.recordValidated.name,
        outputs: { loaded: topics.recordsLoaded.name },
        errors: topics.processingError.name,
        sink: () => {
          if (deps.postgres === undefined) throw new Error('the load stage needs Postgres');
          return createLoadSink(deps.postgres());
        },
      },
    ],
  });
}
