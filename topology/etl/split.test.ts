import t from 'tap';
import { PipelineError } from '../../core/errors.js';
import type { FileExtractSuccess, FilePiece, FilePieceRange } from '../../schemas/index.js';
import type { InputMessage } from '../lib/types.js';
import { createSplit } from './split.js';

function fileEvent(overrides: Partial<FileExtractSuccess> = {}): InputMessage<FileExtractSuccess> {
  return {
    topic: 'FileExtractSuccess',
    partition: 0,
    offset: '3',
    key: 'acme/req-1',
    headers: {},
    value: {
      request_id: 'req-1',
      tenant: 'acme',
      bucket: 'imports',
      key: 'acme/files/x.json',
      etag: 'e',
      size: 1000,
      sha256: '',
      record_count: 10,
      format: 'ndjson',
      content_type: null,
      original_filename: null,
      received_at: 1000,
      ...overrides,
    },
  };
}

const ranges = (count: number, records = 10, size = 1000): FilePieceRange[] =>
  Array.from({ length: count }, (_, i) => ({
    byte_start: (i * size) / count,
    byte_end: ((i + 1) * size) / count - 1,
    record_start: (i * records) / count,
    record_count: records / count,
  }));

t.test('an event without pieces (or written before they existed) is one whole-file piece', async (t) => {
  const [only, ...rest] = [...createSplit(() => 3)(fileEvent())];
  t.same(rest, []);
  t.match(only, { to: 'pieces', key: 'acme/req-1/0', requestId: 'req-1' });
  t.match(only!.value, {
    piece_index: 0,
    piece_count: 1,
    byte_start: null,
    byte_end: null,
    record_start: 0,
    record_count: 10,
    received_at: 1000,
    accepted_at: 1000,
    format: 'ndjson',
  });
  t.match([...createSplit(() => 3)(fileEvent({ accepted_at: 2500 }))][0]!.value, { accepted_at: 2500 }, 'accepted_at when the ingress set it');
});

t.test('the pieces of a file go to consecutive partitions, so they spread evenly whatever their keys hash to', async (t) => {
  for (const partitions of [1, 3, 6]) {
    for (const count of [2, 5, 10]) {
      const emits = [...createSplit(() => partitions)(fileEvent({ pieces: ranges(count) }))];
      t.same(
        emits.map((emit) => (emit.value as FilePiece).piece_index),
        Array.from({ length: count }, (_, i) => i),
      );
      const perPartition = new Map<number, number>();
      for (const emit of emits) perPartition.set(emit.partition!, (perPartition.get(emit.partition!) ?? 0) + 1);
      const counts = [...perPartition.values()];
      t.ok(
        Math.max(...counts) - Math.min(...counts) <= 1 && perPartition.size === Math.min(partitions, count),
        `${count} pieces over ${partitions} partitions: ${JSON.stringify([...perPartition])}`,
      );
      t.ok(emits.every((emit) => emit.partition! >= 0 && emit.partition! < partitions));
    }
  }
  const [second] = [...createSplit(() => 3)(fileEvent({ pieces: ranges(2) }))].slice(1);
  t.match(second!.value, { byte_start: 500, byte_end: 999, record_start: 5, record_count: 5, piece_count: 2 });
});

t.test('a piece plan that does not cover the records in order is poison', async (t) => {
  const bad: Array<[string, FilePieceRange[]]> = [
    ['a gap in the records', [ranges(2)[0]!, { ...ranges(2)[1]!, record_start: 6 }]],
    ['overlapping bytes', [ranges(2)[0]!, { ...ranges(2)[1]!, byte_start: 100 }]],
    ['past the end of the file', [ranges(2)[0]!, { ...ranges(2)[1]!, byte_end: 1001 }]],
    ['fewer records than the file', ranges(2, 8)],
  ];
  for (const [name, pieces] of bad) {
    const error = (() => {
      try {
        return [...createSplit(() => 3)(fileEvent({ pieces }))];
      } catch (caught) {
        return caught;
      }
    })();
    t.type(error, PipelineError, name);
    t.match(error, { code: 'BAD_PIECE_PLAN', retriable: false }, name);
  }
});
