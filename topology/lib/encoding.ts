/**
 * Messages in and out of a stage: decoding a consumed record into an InputMessage, encoding
 * an Emit into the record the driver sends (Avro value through the registry; request id,
 * event type and content type as plain headers so kcat shows them), and the ProcessingError
 * that replaces a message's outputs when it cannot be processed.
 */
import { avroContentType, type EventCodec } from '../../core/event-codec.js';
import { errorMessage, PipelineError } from '../../core/errors.js';
import type { ProcessingError } from '../../schemas/index.js';
import type { ConsumedRecord, OutgoingRecord } from './driver.js';
import type { Emit, InputMessage } from './types.js';

export async function encodeEmit(codec: EventCodec, topic: string, emit: Emit): Promise<OutgoingRecord> {
  return {
    topic,
    key: emit.key,
    value: await codec.encode(topic, emit.value),
    headers: { request_id: emit.requestId, event_type: topic, 'content-type': avroContentType },
    ...(emit.partition === undefined ? {} : { partition: emit.partition }),
  };
}

/** Where a consumed record came from, for error events and logs. */
export interface RecordOrigin {
  topic: string;
  partition: number;
  offset: string;
  headers: Record<string, string>;
}

export function originOf(topic: string, partition: number, record: ConsumedRecord): RecordOrigin {
  return { topic, partition, offset: record.offset, headers: record.headers };
}

/** Decodes a record's value; a record that cannot be decoded is poison (a PipelineError, not retriable). */
export async function decodeRecord(codec: EventCodec, origin: RecordOrigin, record: ConsumedRecord): Promise<InputMessage<unknown>> {
  if (record.value === null) throw new PipelineError('EMPTY_MESSAGE', 'the message has no value');
  let value: unknown;
  try {
    value = await codec.decode(record.value);
  } catch (error) {
    if (error instanceof PipelineError && !error.retriable) throw error;
    throw new PipelineError('UNDECODABLE', `cannot decode the message: ${errorMessage(error)}`, { cause: error });
  }
  return { ...origin, key: record.key?.toString(), value };
}

/** The reason code a failure is counted and reported under. */
export function reasonOf(error: unknown): string {
  return error instanceof PipelineError ? error.code : 'UNPROCESSABLE';
}

/** A scalar field of an undecodable or foreign value as text; anything else is not an id. */
function textOf(value: unknown): string {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' ? String(value) : '';
}

/** The ProcessingError that replaces a message's outputs when it cannot be processed. */
export function processingErrorOf(stage: string, input: RecordOrigin & { value?: unknown }, error: unknown): Emit {
  const value = (input.value ?? {}) as Record<string, unknown>;
  const requestId = textOf(value.request_id ?? input.headers.request_id);
  const event: ProcessingError = {
    stage,
    request_id: requestId,
    tenant: textOf(value.tenant),
    reason_code: reasonOf(error),
    message: errorMessage(error),
    record_key: typeof value.record_key === 'string' ? value.record_key : null,
    record_index: typeof value.record_index === 'number' ? value.record_index : null,
    source_topic: input.topic,
    source_partition: input.partition,
    source_offset: Number(input.offset),
    failed_at: Date.now(),
  };
  return { to: 'errors', key: requestId === '' ? `${input.topic}/${input.partition}/${input.offset}` : requestId, value: event, requestId };
}
