import t from 'tap';
import { PipelineError } from '../../core/errors.js';
import { JsonScanner } from '../../core/json-stream.js';
import type { CompanyRecordEvent, FileExtracted, FilePiece } from '../../schemas/index.js';
import type { Emit, InputMessage, StageContext } from '../lib/types.js';
import { classifyS3Error, createExtract, recordKey, type OpenObject } from './extract.js';

const context = { logger: { warn() {}, info() {}, debug() {} } as never } as StageContext;

function fileEvent(overrides: Partial<FilePiece> = {}): InputMessage<FilePiece> {
  return {
    topic: 'FilePiece',
    partition: 0,
    offset: '7',
    key: 'acme/req-1/0',
    headers: {},
    value: {
      request_id: 'req-1',
      tenant: 'acme',
      bucket: 'imports',
      key: 'acme/files/x.json',
      format: 'ndjson',
      received_at: 1000,
      accepted_at: 1500,
      piece_index: 0,
      piece_count: 1,
      byte_start: null,
      byte_end: null,
      record_start: 0,
      record_count: 3,
      ...overrides,
    },
  };
}

/** An in-memory object (or the asked range of it) in small chunks, so records cross chunk boundaries. */
function objectOf(text: string, chunkSize = 7): OpenObject {
  return async (_bucket, _key, range) =>
    (async function* () {
      const whole = Buffer.from(text);
      const bytes = range === undefined ? whole : whole.subarray(range.start, range.end);
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
  t.same(
    emits.map((emit) => [emit.to, emit.key]),
    [
      ['records', 'a'],
      ['records', 'b'],
      ['records', 'req-1#2'],
      ['summary', 'acme/req-1'],
    ],
  );
  const first = emits[0]!.value as CompanyRecordEvent;
  t.same(JSON.parse(first.document), { _id: '9c0bf1b76f6ffa6746a21d40', name: 'A', permalink: 'a', created_at: '2010-05-15T12:45:44.000Z' });
  t.match(first, { request_id: 'req-1', tenant: 'acme', bucket: 'imports', key: 'acme/files/x.json', record_index: 0, accepted_at: 1500 });
  t.equal(JSON.parse((emits[1]!.value as CompanyRecordEvent).document).updated_at, '2007-12-08T07:15:44.000Z');
  const summary = emits[3]!.value as FileExtracted;
  t.match(summary, { request_id: 'req-1', record_count: 3, bytes: Buffer.byteLength(ndjson), received_at: 1000, piece_index: 0, piece_count: 1 });
  for (const emit of emits) t.equal(emit.requestId, 'req-1');
});

t.test('a JSON array file yields its elements; an object file yields one record', async (t) => {
  const array = await collect(createExtract(objectOf('[{"permalink":"x"},{"permalink":"y"}]'))(fileEvent({ format: 'array', record_count: 2 }), context));
  t.same(
    array.filter((emit) => emit.to === 'records').map((emit) => emit.key),
    ['x', 'y'],
  );
  const object = await collect(
    createExtract(objectOf('{"permalink":"solo","n":{"$numberLong":"5"}}'))(fileEvent({ format: 'object', record_count: 1 }), context),
  );
  t.same(JSON.parse((object[0]!.value as CompanyRecordEvent).document), { permalink: 'solo', n: 5 });
});

/** Record-aligned pieces of `body` of about `target` bytes, as the ingress plans them. */
function piecesOf(body: string, format: 'array' | 'ndjson', target: number): Array<Partial<FilePiece>> {
  const pieces: Array<Partial<FilePiece> & { byte_start: number; byte_end: number; record_start: number; record_count: number }> = [];
  const scanner = new JsonScanner({
    expect: format === 'ndjson' ? 'ndjson' : 'json',
    onRecordBounds: (index, start, end) => {
      const last = pieces.at(-1);
      if (last === undefined || last.byte_end - last.byte_start >= target)
        pieces.push({ byte_start: start, byte_end: end, record_start: index, record_count: 1 });
      else Object.assign(last, { byte_end: end, record_count: last.record_count + 1 });
    },
  });
  scanner.write(Buffer.from(body));
  scanner.end();
  return pieces.map((piece, index) => ({ ...piece, format, piece_index: index, piece_count: pieces.length }));
}

t.test('the pieces of a file yield together exactly the records of the whole file, with their file-wide indexes', async (t) => {
  const values = Array.from({ length: 40 }, (_, i) => ({ permalink: `p${i}`, name: 'é'.repeat(i % 5), offices: [{ city: `c${i}` }] }));
  const bodies = {
    ndjson: values.map((value) => JSON.stringify(value)).join('\r\n\n'),
    array: JSON.stringify(values, null, 2),
  } as const;
  for (const format of ['ndjson', 'array'] as const) {
    const body = bodies[format];
    const whole = (await collect(createExtract(objectOf(body, 5))(fileEvent({ format, record_count: values.length }), context))).filter(
      (emit) => emit.to === 'records',
    );
    for (const target of [1, 90, 400, 10_000]) {
      const pieces = piecesOf(body, format, target);
      const records: Emit[] = [];
      const summaries: FileExtracted[] = [];
      for (const piece of pieces) {
        for (const emit of await collect(createExtract(objectOf(body, 5))(fileEvent(piece), context))) {
          if (emit.to === 'records') records.push(emit);
          else summaries.push(emit.value as FileExtracted);
        }
      }
      t.same(records, whole, `${format} in ${pieces.length} pieces of ~${target} bytes: the same records, keys and indexes`);
      t.same(
        summaries.map((summary) => summary.record_count).reduce((a, b) => a + b, 0),
        values.length,
        'the summaries add up to the file',
      );
      t.same(
        summaries.map((summary) => [summary.piece_index, summary.piece_count]),
        pieces.map((_, i) => [i, pieces.length]),
      );
    }
  }
});

t.test('a piece whose range no longer holds what the ingress counted is poison', async (t) => {
  const body = '{"permalink":"a"}\n{"permalink":"b"}\n';
  const short = await collect(createExtract(objectOf(body))(fileEvent({ byte_start: 0, byte_end: 17, record_count: 2 }), context)).catch(
    (caught: unknown) => caught,
  );
  t.equal((short as PipelineError).code, 'RECORD_COUNT_MISMATCH');
  const cut = await collect(createExtract(objectOf(body))(fileEvent({ byte_start: 3, byte_end: 17, record_count: 1 }), context)).catch(
    (caught: unknown) => caught,
  );
  t.equal((cut as PipelineError).code, 'FILE_CORRUPT');
  const gone = await collect(createExtract(objectOf('{"permalink":"a"}'))(fileEvent({ byte_start: 0, byte_end: 30, record_count: 1 }), context)).catch(
    (caught: unknown) => caught,
  );
  t.equal((gone as PipelineError).code, 'FILE_CORRUPT', 'fewer bytes than the range: the object changed');
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
