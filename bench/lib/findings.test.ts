import t from 'tap';
import { finding, findingIn } from './findings.js';

t.test('findingIn: the paragraph under its heading, lines joined', async (t) => {
  const text = '# Findings\n\nintro\n\n## a\n\nfirst line\nsecond line\n\n## b\n\nb only\n';
  t.equal(findingIn(text, 'a'), 'first line second line');
  t.equal(findingIn(text, 'b'), 'b only');
  t.throws(() => findingIn(text, 'c'), /no "## c"/);
  t.throws(() => findingIn('## empty\n\n', 'empty'), /is empty/);
});

t.test('every finding the reports quote is in bench/findings.md, dated', async (t) => {
  for (const id of ['pipeline-cpu-profile', 'pipeline-compression-levers', 'pipeline-duplicates-by-hand', 'ingest-cpu-profile']) {
    t.match(finding(id), /20\d\d-\d\d-\d\d/, id);
  }
  t.ok(finding('pipeline-own-code-share').length > 0);
});
