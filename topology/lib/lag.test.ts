import t from 'tap';
import { computeLag } from './lag.js';

const committed = (entries: Record<number, string | null>) =>
  new Map(Object.entries(entries).map(([partition, offset]) => [Number(partition), { offset }]));

t.test('lag: end minus committed, the whole partition when nothing is committed', async (t) => {
  const ends = [
    { partition: 1, high: '10', low: '0' },
    { partition: 0, high: '100', low: '40' },
    { partition: 2, high: '7', low: '0' },
  ];
  t.same(computeLag(ends, committed({ 0: '90', 1: null, 2: '7' })), [
    { partition: 0, lag: 10 },
    { partition: 1, lag: 10 },
    { partition: 2, lag: 0 },
  ]);
  t.same(computeLag(ends, new Map()), [
    { partition: 0, lag: 60 },
    { partition: 1, lag: 10 },
    { partition: 2, lag: 7 },
  ]);
  t.same(computeLag([{ partition: 0, high: '5', low: '0' }], committed({ 0: '9' })), [{ partition: 0, lag: 0 }], 'never negative');
});

t.test('lag: offsets past 2^53 are subtracted exactly', async (t) => {
  t.same(computeLag([{ partition: 0, high: '9007199254740995', low: '0' }], committed({ 0: '9007199254740993' })), [{ partition: 0, lag: 2 }]);
});
