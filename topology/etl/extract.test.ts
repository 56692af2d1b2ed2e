import t from 'tap';
import { PipelineError } from '../../core/errors.js';
import type { CompanyRecordEvent, FileExtracted, FileExtractSuccess } from '../../schemas/index.js';
import type { Emit, InputMessage, StageContext } from '../lib/types.js';
import { classifyS3Error, createExtract, recordKey } from './extract.js';

const context = { logger: { warn() {}, info() {}, debug() {} } as never } as StageContext;

function fileEvent(overrides: Partial<FileExtractSuccess> = {}): InputMessage<FileExtractSuccess> {
  return {
    topic: 'FileExtractSuccess',
    partition: 0,
    offset: '7',
    key: 'acme',
    headers: {},
    value: {
      request_id: 'req-1',
      tenant: 'acme',
      bucket: 'imports',
      key: 'acme/files/x.json',
      etag: 'e',
      size: 0,
      sha256: '',
      record_count: 3,
      format: 'ndjson',
      content_type: null,
      original_filename: null,
      received_at: 1000,
      ...overrides,
    },
  };
}

/** An in-memory object split into small chunks, so records cross chunk boundaries. */
function objectOf(text: string, chunkSize = 7) {
  return async () =>
    (async function* () {
      const bytes = Buffer.from(text);
      for (let i = 0; i < bytes.length; i += chunkSize) yield bytes.subarray(i, i + chunkSize);
    })();
}

async function collect(iterable: AsyncIterable<Emit>): Promise<Emit[]> {
  const emits: Emit[] = [];
  for await (const emit of iterable) emits.push(emit);
  return emits;
}

t.test('splits NDJSON into records keyed by permalink, normalised, then a summary', async (t) => {
  const ndjson = [
    '{"_id":{"$oid":"9c0bf1b76f6ffa6746a21d40"},"name":"A","permalink":"a","created_at":{"$date":"2010-05-15T12:45:44Z"}}',
    '',
    '{"name":"B","permalink":"b","updated_at":"Sat Dec 08 07:15:44 UTC 2007"}',
    '[1,2]',
  ].join('\n');
  const emits = await collect(createExtract(objectOf(ndjson))(fileEvent(), context));
  t.equal(emits.length, 4);
  t.same(emits.map((emit) => [emit.to, emit.key]), [
    ['records', 'a'],
    ['records', 'b'],
    ['records', 'req-1#2'],
    ['summary', 'acme'],
  ]);
  const first = emits[0]!.value as CompanyRecordEvent;
  t.same(JSON.parse(first.document), { _id: '9c0bf1b76f6ffa6746a21d40', name: 'A', permalink: 'a', created_at: '2010-05-15T12:45:44.000Z' });
  t.match(first, { request_id: 'req-1', tenant: 'acme', bucket: 'imports', key: 'acme/files/x.json', record_index: 0 });
  t.equal(JSON.parse((emits[1]!.value as CompanyRecordEvent).document).updated_at, '2007-12-08T07:15:44.000Z');
  const summary = emits[3]!.value as FileExtracted;
  t.match(summary, { request_id: 'req-1', record_count: 3, bytes: Buffer.byteLength(ndjson), received_at: 1000 });
  for (const emit of emits) t.equal(emit.requestId, 'req-1');
});

t.test('a JSON array file yields its elements; an object file yields one record', async (t) => {
  const array = await collect(
    createExtract(objectOf('[{"permalink":"x"},{"permalink":"y"}]'))(fileEvent({ format: 'array', record_count: 2 }), context),
  );
  t.same(array.filter((emit) => emit.to === 'records').map((emit) => emit.key), ['x', 'y']);
  const object = await collect(createExtract(objectOf('{"permalink":"solo","n":{"$numberLong":"5"}}'))(fileEvent({ format: 'object', record_count: 1 }), context));
  t.same(JSON.parse((object[0]!.value as CompanyRecordEvent).document), { permalink: 'solo', n: 5 });
});

t.test('a file that no longer matches its event is poison, not retried', async (t) => {
  const corrupt = createExtract(objectOf('{"permalink":"a"}\n{"permalink":'))(fileEvent(), context);
  const error = await collect(corrupt).catch((caught: unknown) => caught);
  t.type(error, PipelineError);
  t.equal((error as PipelineError).code, 'FILE_CORRUPT');
  t.equal((error as PipelineError).retriable, false);
  const mismatch = await collect(createExtract(objectOf('{"permalink":"a"}\n'))(fileEvent({ record_count: 2 }), context)).catch((caught: unknown) => caught);
  t.equal((mismatch as PipelineError).code, 'RECORD_COUNT_MISMATCH');
});

t.test('S3 errors: a missing object is poison, an outage is retried', async (t) => {
  const missing = classifyS3Error(Object.assign(new Error('nope'), { name: 'NoSuchKey' }), 'b', 'k');
  t.equal(missing.code, 'S3_OBJECT_MISSING');
  t.equal(missing.retriable, false);
  const outage = classifyS3Error(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'b', 'k');
  t.equal(outage.code, 'S3_UNAVAILABLE');
  t.equal(outage.retriable, true);
});

t.test('record keys: the permalink, else a stable stand-in', async (t) => {
  t.equal(recordKey({ permalink: 'acme' }, 'r', 1), 'acme');
  t.equal(recordKey({ permalink: '  ' }, 'r', 1), 'r#1');
  t.equal(recordKey([1], 'r', 2), 'r#2');
  t.equal(recordKey(null, 'r', 3), 'r#3');
});
