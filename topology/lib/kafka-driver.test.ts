import t from 'tap';
import type { LibrdkafkaError } from '../../core/kafka.js';
import { transactionCall } from './kafka-driver.js';

type Callback = (error: LibrdkafkaError | null | undefined) => void;

const retriable: LibrdkafkaError = { message: 'Local: Timed out', code: -185, isRetriable: true };

t.test('a call that answers is done; a retriable error is answered by calling again', async (t) => {
  const answers: Array<LibrdkafkaError | null> = [retriable, null];
  let calls = 0;
  await transactionCall(
    'commit_transaction',
    (callback: Callback) => {
      calls++;
      callback(answers.shift());
    },
    { timeoutMs: 10 },
  );
  t.equal(calls, 2);
});

t.test('an error that is not retriable fails the call as it is', async (t) => {
  const error = await transactionCall('commit_transaction', (callback: Callback) => callback({ message: 'Broker: Producer fenced', code: 90, isFatal: true }), {
    timeoutMs: 10,
  }).catch((failure: unknown) => failure as { message: string; code: number; fatal?: boolean });
  t.match(error, { message: 'Broker: Producer fenced', code: 90, fatal: true });
});

t.test('a call left unanswered past its timeout fails as fatal, and its late answer is still seen', async (t) => {
  let answer: Callback | undefined;
  let answered: Promise<void> | undefined;
  const error = await transactionCall(
    'send_offsets_to_transaction',
    (callback: Callback) => {
      answer = callback;
    },
    {
      timeoutMs: 5,
      graceMs: 5,
      onUnanswered: (late) => {
        answered = late;
      },
    },
  ).catch((failure: unknown) => failure as { message: string; code: number; fatal?: boolean });
  t.match(error, { code: -185, fatal: true, message: /did not answer send_offsets_to_transaction within 10 ms/ });
  t.ok(answered, 'the caller learns that the call may still answer');
  let settled = false;
  void answered!.then(() => (settled = true));
  await Promise.resolve();
  t.equal(settled, false, 'not answered yet');
  answer!(null);
  await answered;
  t.equal(settled, true, 'the late answer settles it');
});
