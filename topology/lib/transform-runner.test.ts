import t from 'tap';
import { resumeMetadata, resumeOutputsOf } from './transform-runner.js';

t.test('a partial commit records its output count as offset metadata, and only that is read back', async (t) => {
  t.equal(resumeOutputsOf(resumeMetadata(2000)), 2000);
  for (const other of [null, '', 'x', '{"outputs":-1}', '{"outputs":1.5}', '{"outputs":"7"}', '{}', '[]']) {
    t.equal(resumeOutputsOf(other), 0, `metadata ${JSON.stringify(other)} is no resume point`);
  }
});
