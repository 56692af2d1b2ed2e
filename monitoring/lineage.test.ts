import t from 'tap';
import {
  applyEvent,
  computeStatus,
  emptyEffects,
  emptyLineage,
  processingErrorEffect,
  settle,
  toJson,
  toLineageEvent,
  toMillis,
  type Lineage,
  type LineageEvent,
} from './lineage.js';

const id = 'req-00000001';
const t0 = Date.UTC(2025, 0, 2, 3, 4, 5);

const received: LineageEvent = { kind: 'received', requestId: id, tenant: 'acme', at: t0, filename: 'a.json', size: 100, recordsExpected: 5 };
const extracted: LineageEvent = { kind: 'extracted', requestId: id, tenant: 'acme', at: t0 + 1000, extracted: 5, receivedAt: t0, piece: 0, pieces: 1 };
const piece = (index: number, pieces: number, records: number, at: number): LineageEvent => ({
  kind: 'extracted',
  requestId: id,
  tenant: 'acme',
  at,
  extracted: records,
  receivedAt: t0,
  piece: index,
  pieces,
});
const invalid = (at: number): LineageEvent => ({
  kind: 'invalid',
  requestId: id,
  tenant: 'acme',
  at,
  recordIndex: 0,
  recordKey: null,
  violations: [],
  source: { topic: 'RecordExtracted', partition: 0, offset: 0 },
});
const loaded = (batchId: string, inserted: number, updated: number, rejected: number, at: number, unchanged = 0): LineageEvent => ({
  kind: 'loaded',
  requestId: id,
  tenant: 'acme',
  at,
  batchId,
  inserted,
  updated,
  unchanged,
  rejected,
});

function run(events: LineageEvent[]): { lineage: Lineage; effects: ReturnType<typeof emptyEffects> } {
  const lineage = emptyLineage(id);
  const effects = emptyEffects();
  for (const event of events) {
    applyEvent(lineage, event, effects);
    settle(lineage, effects);
  }
  return { lineage, effects };
}

t.test("a file in pieces is extracted once every piece is, with the pieces' records added up, in any order", async (t) => {
  for (const order of [
    [0, 1, 2],
    [2, 0, 1],
  ]) {
    const lineage = emptyLineage(id);
    const effects = emptyEffects();
    applyEvent(lineage, received, effects);
    applyEvent(lineage, loaded('b1', 6, 0, 0, t0 + 500), effects);
    const seen: string[] = [];
    for (const index of order) {
      applyEvent(lineage, piece(index, 3, 2, t0 + 1000 * (index + 1)), effects);
      settle(lineage, effects);
      seen.push(lineage.status);
    }
    t.same(seen, ['extracting', 'extracting', 'complete'], `pieces in order ${order.join(',')}`);
    t.equal(lineage.extracted, 6);
    t.equal(lineage.piecesExtracted, 3);
    t.equal(lineage.extractedAt, t0 + 3000, 'extracted when the last piece was');
    t.equal(effects.recordsExtracted.get('acme'), 6);
  }
});

t.test('status follows the counts: received → extracted → complete', async (t) => {
  const lineage = emptyLineage(id);
  t.equal(computeStatus(lineage), 'received');
  applyEvent(lineage, received);
  settle(lineage);
  t.equal(lineage.status, 'received');
  applyEvent(lineage, extracted);
  settle(lineage);
  t.equal(lineage.status, 'extracted');
  t.equal(lineage.extracted, 5);
  applyEvent(lineage, invalid(t0 + 1500));
  applyEvent(lineage, loaded('b1', 2, 1, 0, t0 + 2000));
  settle(lineage);
  t.equal(lineage.status, 'extracted', '4 of 5 accounted for');
  const effects = emptyEffects();
  applyEvent(lineage, loaded('b2', 0, 0, 1, t0 + 3000), effects);
  settle(lineage, effects);
  t.equal(lineage.status, 'complete', 'loaded + invalid + rejected = extracted');
  t.equal(lineage.completedAt, t0 + 3000, 'completed when the last event happened');
  t.same(effects.completed, [{ tenant: 'acme', latencySeconds: 3 }]);
  t.match(lineage, { invalid: 1, loaded: 3, inserted: 2, updated: 1, rejected: 1 });
});

t.test('unchanged records are loaded: a replay of loaded data completes with them', async (t) => {
  const effects = emptyEffects();
  const { lineage } = run([received, extracted, invalid(t0 + 1500), loaded('b1', 0, 0, 0, t0 + 2000, 3), loaded('b2', 0, 1, 0, t0 + 2500)]);
  t.match(lineage, { status: 'complete', loaded: 4, inserted: 0, updated: 1, unchanged: 3, invalid: 1 });
  applyEvent(emptyLineage(id), loaded('b3', 1, 2, 1, t0, 3), effects);
  t.same(effects.recordsLoaded.get('acme'), 6, 'the metric counts them as loaded');
  t.same(effects.recordsValid.get('acme'), 7);
  t.match(toJson(lineage), { inserted: 0, updated: 1, unchanged: 3, loaded: 4 }, 'the API shows them');
});

t.test('records downstream before the extract summary: extracting', async (t) => {
  const { lineage } = run([invalid(t0 + 10)]);
  t.equal(lineage.status, 'extracting');
  t.equal(lineage.tenant, 'acme', 'the first event names the tenant');
  t.equal(lineage.receivedAt, null);
});

t.test('any order of the same events gives the same lineage, completed once', async (t) => {
  const events = [received, extracted, invalid(t0 + 1500), loaded('b1', 3, 0, 0, t0 + 2500), loaded('b2', 0, 1, 0, t0 + 2000)];
  const orders = [
    events,
    [...events].reverse(),
    [events[3]!, events[1]!, events[4]!, events[0]!, events[2]!],
    [events[2]!, events[4]!, events[3]!, events[1]!, events[0]!],
  ];
  const results = orders.map((order) => run(order));
  for (const { lineage, effects } of results) {
    t.equal(lineage.status, 'complete');
    t.equal(effects.completed.length, 1, 'completion observed once');
    t.equal(lineage.completedAt, t0 + 2500, 'completed at the latest event time');
    t.equal(lineage.receivedAt, t0);
  }
  t.same(toJson(results[1]!.lineage), toJson(results[0]!.lineage));
  t.same(toJson(results[2]!.lineage), toJson(results[0]!.lineage));
  t.same(toJson(results[3]!.lineage), toJson(results[0]!.lineage));
});

t.test('an empty file completes as soon as it is extracted', async (t) => {
  const { lineage, effects } = run([received, { ...extracted, extracted: 0 }]);
  t.equal(lineage.status, 'complete');
  t.equal(effects.completed.length, 1);
});

t.test('a refused file fails with its code; a failure wins over counts', async (t) => {
  const rejected: LineageEvent = {
    kind: 'rejected',
    requestId: id,
    tenant: 'acme',
    at: t0,
    filename: 'bad.json',
    size: 7,
    code: 'INVALID_JSON',
    message: 'unexpected a',
  };
  const { lineage, effects } = run([rejected]);
  t.match(lineage, { status: 'failed', errorCode: 'INVALID_JSON', errorMessage: 'unexpected a', failedAt: t0, receivedAt: t0, size: 7, filename: 'bad.json' });
  t.same(effects.failed, [{ tenant: 'acme' }]);
  t.same([...effects.filesRejected], [['acme', 1]]);

  const extractFailure: LineageEvent = {
    kind: 'processing-error',
    requestId: id,
    tenant: 'acme',
    at: t0 + 5,
    stage: 'extract',
    code: 'S3_OBJECT_MISSING',
    message: 'gone',
    recordIndex: null,
    recordKey: null,
    source: { topic: 'FileExtractSuccess', partition: 0, offset: 3 },
    effect: 'fail',
  };
  const recordError: LineageEvent = { ...extractFailure, stage: 'validate', code: 'UNDECODABLE', message: 'x', effect: 'unprocessed' };
  const second = run([received, recordError, extractFailure]);
  t.equal(second.lineage.status, 'failed');
  t.equal(second.lineage.errorCode, 'S3_OBJECT_MISSING', 'the file-level failure replaces a record-level error');
  t.equal(second.lineage.unprocessed, 1);
});

t.test('record-level processing errors count towards completion; PG rejections do not count twice', async (t) => {
  t.equal(processingErrorEffect('extract', 'S3_OBJECT_MISSING'), 'fail');
  t.equal(processingErrorEffect('load', 'PG_23505'), 'none');
  t.equal(processingErrorEffect('load', 'UNDECODABLE'), 'unprocessed');
  t.equal(processingErrorEffect('validate', 'UNPROCESSABLE'), 'unprocessed');
  t.equal(processingErrorEffect('monitoring-RecordsLoaded', 'UNDECODABLE'), 'none');
  const lost: LineageEvent = {
    kind: 'processing-error',
    requestId: id,
    tenant: 'acme',
    at: t0 + 9,
    stage: 'validate',
    code: 'UNPROCESSABLE',
    message: 'boom',
    recordIndex: 4,
    recordKey: 'acme-4',
    source: { topic: 'RecordExtracted', partition: 1, offset: 8 },
    effect: 'unprocessed',
  };
  const { lineage } = run([received, extracted, loaded('b1', 4, 0, 0, t0 + 5), lost]);
  t.equal(lineage.status, 'complete');
  t.equal(lineage.errorCode, 'UNPROCESSABLE', 'shown, although the import is complete');
});

t.test('metrics effects: each file and record counted once per tenant', async (t) => {
  // A repeated FileExtracted (same piece) or RecordsLoaded (same batch) is dropped by the store before.
  const { effects } = run([received, received, extracted, invalid(1), loaded('b1', 2, 1, 1, 2)]);
  t.same([...effects.filesReceived], [['acme', 1]], 'a repeated FileExtractSuccess is not a second file');
  t.same([...effects.recordsExtracted], [['acme', 5]]);
  t.same([...effects.recordsInvalid], [['acme', 1]]);
  t.same([...effects.recordsLoaded], [['acme', 3]]);
  t.same([...effects.recordsRejected], [['acme', 1]]);
  t.same([...effects.recordsValid], [['acme', 4]]);
});

t.test('toLineageEvent maps each topic and ignores events without a request id', async (t) => {
  t.match(
    toLineageEvent('FileExtractSuccess', {
      request_id: id,
      tenant: 'acme',
      bucket: 'raw',
      key: 'acme/2026/12/03/f.json',
      size: 10,
      record_count: 2,
      original_filename: null,
      received_at: new Date(t0),
    }),
    { kind: 'received', requestId: id, tenant: 'acme', size: 10, recordsExpected: 2, filename: null, at: t0, rawObject: 's3://raw/acme/2026/12/03/f.json' },
  );
  t.equal(run([{ ...received, rawObject: 's3://raw/k' }]).lineage.rawObject, 's3://raw/k', 'the lineage keeps where the file is');
  t.match(
    toLineageEvent('FileExtractError', {
      request_id: id,
      tenant: 'acme',
      reason_code: 'TRUNCATED',
      message: 'm',
      bytes_received: 3,
      original_filename: 'f',
      received_at: t0,
    }),
    { kind: 'rejected', code: 'TRUNCATED', size: 3, filename: 'f' },
  );
  t.match(toLineageEvent('FileExtracted', { request_id: id, tenant: 'acme', record_count: 60, received_at: t0, extracted_at: t0 + 1 }), {
    kind: 'extracted',
    extracted: 60,
    at: t0 + 1,
  });
  t.match(toLineageEvent('ValidationError', { request_id: id, tenant: 'acme', detected_at: t0 }), { kind: 'invalid' });
  t.match(toLineageEvent('RecordsLoaded', { request_id: id, tenant: 'acme', batch_id: 'g/t/0/1-2', inserted: 1, updated: 0, rejected: 0, loaded_at: t0 }), {
    kind: 'loaded',
    batchId: 'g/t/0/1-2',
    unchanged: 0,
  });
  t.match(
    toLineageEvent('RecordsLoaded', {
      request_id: id,
      tenant: 'acme',
      batch_id: 'g/t/0/1-2',
      inserted: 0,
      updated: 1,
      rejected: 0,
      loaded_at: t0,
      unchanged: 4,
    }),
    { kind: 'loaded', updated: 1, unchanged: 4 },
  );
  t.match(
    toLineageEvent('ProcessingError', {
      stage: 'extract',
      request_id: id,
      tenant: 'acme',
      reason_code: 'S3_OBJECT_MISSING',
      message: 'gone',
      source_topic: 'FileExtractSuccess',
      source_partition: 1,
      source_offset: 5,
      failed_at: t0,
    }),
    { kind: 'processing-error', effect: 'fail', source: { topic: 'FileExtractSuccess', partition: 1, offset: 5 } },
  );
  t.equal(toLineageEvent('ProcessingError', { stage: 'load', request_id: '', reason_code: 'UNDECODABLE' }), undefined);
  t.equal(toLineageEvent('RecordValidated', { request_id: id }), undefined, 'not a lineage topic');
  t.equal(toMillis(new Date(5)), 5);
  t.equal(toMillis(7n), 7);
  t.equal(toMillis('9'), 9);
});

t.test('toJson: snake_case with ISO times', async (t) => {
  const { lineage } = run([received, extracted]);
  t.match(toJson(lineage, t0), {
    request_id: id,
    tenant: 'acme',
    status: 'extracted',
    records_expected: 5,
    extracted: 5,
    received_at: '2025-01-02T03:04:05.000Z',
    extracted_at: '2025-01-02T03:04:06.000Z',
    completed_at: null,
    updated_at: '2025-01-02T03:04:05.000Z',
  });
});
