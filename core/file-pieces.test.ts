import t from 'tap';
import { JsonScanner } from './json-stream.js';
import { PiecePlanner } from './file-pieces.js';

function plan(body: string, targetBytes: number) {
  const planner = new PiecePlanner(targetBytes);
  const scanner = new JsonScanner({ onRecordBounds: (index, start, end) => planner.record(index, start, end) });
  scanner.write(Buffer.from(body));
  const scan = scanner.end();
  return { scan, pieces: planner.finish(scan.format) };
}

t.test('pieces are record-aligned, in order, cover every record once and are about the target size', async (t) => {
  const lines = Array.from({ length: 50 }, (_, i) => JSON.stringify({ permalink: `p${i}`, pad: 'x'.repeat(i % 13) }));
  for (const [name, body] of [
    ['ndjson', lines.join('\n') + '\n'],
    ['array', `[\n  ${lines.join(',\n  ')}\n]`],
  ] as const) {
    for (const target of [1, 100, 700]) {
      const { scan, pieces } = plan(body, target);
      t.ok(pieces.length > 1, `${name}, ~${target} bytes: ${pieces.length} pieces`);
      let next = 0;
      let lastEnd = 0;
      const records: string[] = [];
      for (const [i, piece] of pieces.entries()) {
        t.equal(piece.record_start, next, 'records follow on');
        t.ok(piece.byte_start >= lastEnd && piece.byte_end > piece.byte_start);
        if (i < pieces.length - 1) t.ok(piece.byte_end - piece.byte_start >= target, 'only the last piece may be short');
        const slice = body.slice(piece.byte_start, piece.byte_end);
        const values =
          name === 'array'
            ? (JSON.parse(`[${slice}]`) as unknown[])
            : slice
                .split('\n')
                .filter((line) => line !== '')
                .map((line) => JSON.parse(line) as unknown);
        t.equal(values.length, piece.record_count, 'the range holds exactly its records');
        records.push(...values.map((value) => JSON.stringify(value)));
        next += piece.record_count;
        lastEnd = piece.byte_end;
      }
      t.equal(next, scan.records);
      t.same(records, lines, 'together, every record once, in order');
    }
  }
});

t.test('a file that fits in one piece, or an object body, gets no plan', async (t) => {
  t.same(plan('{"a":1}\n{"a":2}\n', 1000).pieces, []);
  t.same(plan('[1,2,3]', 1000).pieces, []);
  t.same(plan('{"records": [1, 2, 3], "pad": "' + 'x'.repeat(100) + '"}', 10).pieces, [], 'one record, whatever its size');
  t.throws(() => new PiecePlanner(0), RangeError);
});
