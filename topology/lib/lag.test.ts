import t from 'tap';
import type { Admin, GroupOffsetReader, LazyClient } from '../../core/kafka.js';
import { computeLag, startLagMonitor, type PartitionLag } from './lag.js';
import { pino } from 'pino';

const silentLogger = pino({ level: 'silent' });

const committed = (entries: Record<number, string | null>) => new Map(Object.entries(entries).map(([partition, offset]) => [Number(partition), { offset }]));

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

t.test('lag monitor: measures through an admin the caller shares, and leaves it connected', async (t) => {
  let disconnects = 0;
  let ownAdmins = 0;
  const client = {
    fetchTopicOffsets: async () => [{ partition: 0, high: '12', low: '0' }],
  } as unknown as Admin;
  const shared: LazyClient<Admin> = {
    connected: async () => client,
    disconnect: async () => {
      disconnects += 1;
    },
  };
  const offsets: GroupOffsetReader = {
    committed: async () => new Map([[0, { partition: 0, offset: '5', metadata: null }]]),
    close: async () => undefined,
  } as unknown as GroupOffsetReader;
  let resolveMeasured: (lags: PartitionLag[]) => void = () => undefined;
  const measured = new Promise<PartitionLag[]>((resolve) => (resolveMeasured = resolve));
  const monitor = startLagMonitor(
    {
      admin: () => {
        ownAdmins += 1;
        throw new Error('the monitor must not open an admin of its own');
      },
      groupOffsets: () => offsets,
    },
    [{ group: 'g', topic: 'T' }],
    { intervalMs: 60_000, logger: silentLogger, admin: shared, onMeasured: (_target, lags) => resolveMeasured(lags) },
  );
  t.same(await measured, [{ partition: 0, lag: 7 }]);
  await monitor.stop();
  t.equal(ownAdmins, 0);
  t.equal(disconnects, 0, 'the owner disconnects it');
});
