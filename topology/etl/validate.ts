/**
 * validate: RecordExtracted → RecordValidated when the record meets the contract
 * (schemas/company.schema.json), otherwise a ValidationError with every violation.
 */
import type { CompanyRecordEvent, ValidationError } from '../../schemas/index.js';
import type { Emit, InputMessage } from '../lib/types.js';
import { validateRecord } from './validate-record.js';

export function* validate(input: InputMessage<CompanyRecordEvent>): Iterable<Emit> {
  const record = input.value;
  const requestId = record.request_id;
  const key = input.key ?? `${requestId}#${record.record_index}`;
  const result = validateRecord(JSON.parse(record.document));
  if (result.valid) {
    yield { to: 'valid', key, value: record, requestId };
    return;
  }
  const event: ValidationError = {
    request_id: requestId,
    tenant: record.tenant,
    record_key: key.startsWith(`${requestId}#`) ? null : key,
    record_index: Number(record.record_index),
    source_topic: input.topic,
    source_partition: input.partition,
    source_offset: Number(input.offset),
    violations: result.violations,
    detected_at: Date.now(),
  };
  yield { to: 'invalid', key, value: event, requestId };
}
