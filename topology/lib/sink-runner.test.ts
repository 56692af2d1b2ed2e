import t from 'tap';
import { OwedEvents } from './sink-runner.js';

t.test('a partition owes events only once marked, until a send of its mark is served', async (t) => {
  const owed = new OwedEvents();
  t.same([...owed.snapshot([0, 1, 2]).keys()], [], 'nothing is marked at first: no send, no query');
  owed.mark([0, 2]);
  const snapshot = owed.snapshot([0, 1, 2]);
  t.same([...snapshot.keys()], [0, 2], 'the assigned partitions are marked');
  owed.served(snapshot);
  t.same([...owed.snapshot([0, 1, 2]).keys()], [], 'a served send clears them');
});

t.test('a mark set while a send is in flight survives that send', async (t) => {
  const owed = new OwedEvents();
  owed.mark([1]);
  const inFlight = owed.snapshot([1]);
  owed.mark([1]); // a write of partition 1 failed meanwhile: its commit may postdate the send's query
  owed.served(inFlight);
  t.same([...owed.snapshot([1]).keys()], [1], 'still owed: the next write sends it first');
  owed.served(owed.snapshot([1]));
  t.same([...owed.snapshot([1]).keys()], [], 'served by a send that saw the newer mark');
});

t.test('serving one partition leaves the others marked', async (t) => {
  const owed = new OwedEvents();
  owed.mark([0, 1]);
  owed.served(owed.snapshot([0]));
  t.same([...owed.snapshot([0, 1]).keys()], [1]);
});
