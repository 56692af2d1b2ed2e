import t from 'tap';
import type { CompanyRecordEvent, ValidationError } from '../../schemas/index.js';
import type { InputMessage } from '../lib/types.js';
import { validate } from './validate.js';

function message(document: unknown, key = 'acme'): InputMessage<CompanyRecordEvent> {
  return {
    topic: 'RecordExtracted',
    partition: 2,
    offset: '41',
    key,
    headers: {},
    value: { request_id: 'req-9', tenant: 't', bucket: 'b', key: 'k', record_index: 4, document: JSON.stringify(document) },
  };
}

t.test('a valid record passes on unchanged, same key', async (t) => {
  const input = message({ name: 'Acme', permalink: 'acme', anything: { else: true } });
  const [emit, ...rest] = [...validate(input)];
  t.same(rest, []);
  t.equal(emit!.to, 'valid');
  t.equal(emit!.key, 'acme');
  t.equal(emit!.value, input.value);
});

t.test('an invalid record becomes a ValidationError with context and every violation', async (t) => {
  const [emit] = [...validate(message({ name: ' ', permalink: 'acme', founded_year: 1700 }))];
  t.equal(emit!.to, 'invalid');
  const event = emit!.value as ValidationError;
  t.match(event, {
    request_id: 'req-9',
    tenant: 't',
    record_key: 'acme',
    record_index: 4,
    source_topic: 'RecordExtracted',
    source_partition: 2,
    source_offset: 41,
  });
  t.same(event.violations.map((violation) => violation.path).sort(), ['/founded_year', '/name']);
  for (const violation of event.violations) {
    t.type(violation.keyword, 'string');
    t.type(violation.message, 'string');
  }
});

t.test('a record that is not an object is invalid and has no record key', async (t) => {
  const [emit] = [...validate(message([1, 2], 'req-9#4'))];
  t.equal(emit!.to, 'invalid');
  t.equal((emit!.value as ValidationError).record_key, null);
});
