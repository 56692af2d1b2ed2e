import t from 'tap';
import { javaPartitionOf, murmur2 } from './murmur2.js';

// Values printed by the Java client's org.apache.kafka.common.utils.Utils.murmur2 (its own
// UtilsTest vectors), so a change that breaks compatibility with Java producers fails here.
t.test("murmur2 matches the Java client's", async (t) => {
  const vectors: Array<[string, number]> = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
    ['', 275646681],
    // Hashed by kafka-clients 4.1.1's Utils.murmur2: multi-byte UTF-8.
    ['société-ø-ß-日本', 1752671413],
  ];
  for (const [input, expected] of vectors) t.equal(murmur2(Buffer.from(input)), expected, input);
});

t.test('a key is placed on a partition in range, the same every time', async (t) => {
  for (const key of ['acme', 'globex', '', 'ünïcode']) {
    const partition = javaPartitionOf(key, 3);
    t.ok(partition >= 0 && partition < 3);
    t.equal(javaPartitionOf(key, 3), partition);
  }
});
