import t from 'tap';
import { envInt, envNumber } from './env.js';

t.test('envNumber: the fallback when unset or empty, else a positive number', async (t) => {
  t.equal(envNumber('X', 7, {}), 7);
  t.equal(envNumber('X', 7, { X: '' }), 7);
  t.equal(envNumber('X', 7, { X: '2.5' }), 2.5);
  t.throws(() => envNumber('X', 7, { X: '0' }), { name: 'RangeError', message: 'X must be a positive number, got "0"' });
  t.throws(() => envNumber('X', 7, { X: 'ten' }), RangeError);
});

t.test('envInt: positive integers only', async (t) => {
  t.equal(envInt('N', 3, {}), 3);
  t.equal(envInt('N', 3, { N: '20000' }), 20_000);
  t.throws(() => envInt('N', 3, { N: '1.5' }), { message: 'N must be a positive integer, got "1.5"' });
  t.throws(() => envInt('N', 3, { N: '-1' }), RangeError);
});
