/**
 * The shape of the pipeline: topic names, partitioning and replication, the bucket and the
 * database. The local stack's set-up and every service read it from here, so a topic is
 * never created with one partition count and consumed with another.
 */

export interface TopicSpec {
  /** Kafka topic name; also the Schema Registry subject prefix (`<name>-value`). */
  readonly name: string;
  /** What the topic carries, for `describe` output and the README. */
  readonly doc: string;
}

/**
 * Partitions per pipeline topic when PIPELINE_PARTITIONS is not set (the design's). Set-up
 * creates or grows topics to the configured count (`config.pipeline.partitions`); services
 * read the real count of a topic from the cluster (`partitionCountsOf`), which may be higher.
 */
export const defaultPartitions = 3;
export const replicationFactor = 3;
export const minInSyncReplicas = 2;

export const topics = {
  fileExtractSuccess: {
    name: 'FileExtractSuccess',
    doc: 'A file was accepted by the ingress and stored in S3 (claim check: points to the object).',
  },
  fileExtractError: {
    name: 'FileExtractError',
    doc: 'A file was refused by the ingress because it could not be parsed.',
  },
  filePiece: {
    name: 'FilePiece',
    doc: 'One record-aligned byte range of an accepted file (split stage output), keyed so the pieces of a file spread over the partitions.',
  },
  validationError: {
    name: 'ValidationError',
    doc: 'A record broke the record contract; carries every violation.',
  },
  recordExtracted: {
    name: 'RecordExtracted',
    doc: 'One normalised record of an accepted file (extract stage output), keyed by permalink.',
  },
  fileExtracted: {
    name: 'FileExtracted',
    doc: 'Per-file summary of the extract stage: how many records the file held.',
  },
  recordValidated: {
    name: 'RecordValidated',
    doc: 'A record that satisfies the record contract (validate stage output), keyed by permalink.',
  },
  recordsLoaded: {
    name: 'RecordsLoaded',
    doc: 'Per committed sink batch and import: records inserted, updated, rejected.',
  },
  processingError: {
    name: 'ProcessingError',
    doc: 'A message a stage could not process, with its source topic/partition/offset and reason.',
  },
} as const satisfies Record<string, TopicSpec>;

export type TopicKey = keyof typeof topics;

export const allTopics: readonly TopicSpec[] = Object.values(topics);

/** Broker-side configuration every pipeline topic is created with. */
/**
 * Largest record batch a topic accepts. A record of an accepted file becomes one message of
 * up to about its own size (the ingress allows records up to INGRESS_MAX_LINE_BYTES, 16 MiB by
 * default, at most 24 MiB): with Kafka's default of 1 MiB a file holding one big record
 * stalled the extract stage for good (MESSAGE_TOO_LARGE, retried forever).
 */
export const maxMessageBytes = 32 * 1024 * 1024;

export const topicConfig: Readonly<Record<string, string>> = {
  'min.insync.replicas': String(minInSyncReplicas),
  'max.message.bytes': String(maxMessageBytes),
  // Events are small claim checks and lineage records: keep a week so a new consumer
  // group (or a replay after an incident) can start from the beginning.
  'retention.ms': String(7 * 24 * 3600 * 1000),
  // Batches are stored as their producer compressed them (the pipeline's own with
  // KAFKA_COMPRESSION): the brokers neither recompress nor inflate what they keep.
  'compression.type': 'producer',
};

/**
 * The key of a file's events (FileExtractSuccess, FileExtractError, FileExtracted): tenant and
 * request id, so one tenant's files spread over the partitions instead of queueing on one.
 */
export function fileKey(tenant: string, requestId: string): string {
  return `${tenant}/${requestId}`;
}

export const defaultBucket = 'imports';
export const defaultDatabase = 'etl';

/** Where the ingress stores an accepted file: `<tenant>/files/<yyyy>/<mm>/<dd>/<request id>.json` (day of receipt, UTC). */
export function rawObjectKey(tenant: string, requestId: string, receivedAt: number): string {
  const date = new Date(receivedAt).toISOString();
  return `${tenant}/files/${date.slice(0, 4)}/${date.slice(5, 7)}/${date.slice(8, 10)}/${requestId}.json`;
}
