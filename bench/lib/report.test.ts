import { readFileSync } from 'node:fs';
import t from 'tap';
import { cpuText, fmt, loadAverages, replaceSection, table, verdict } from './report.js';

t.test('fmt: en-US grouping, fixed decimals, a dash (or the given text) for what is not a number', async (t) => {
  t.equal(fmt(1234567.891), '1,234,568');
  t.equal(fmt(1234.5, 2), '1,234.50');
  t.equal(fmt(0.125, 1), '0.1');
  t.equal(fmt(Number.NaN), '—');
  t.equal(fmt(Number.POSITIVE_INFINITY, 1), '—');
  t.equal(fmt(Number.NaN, 0, 'n/a'), 'n/a');
});

t.test('cpuText: groups (small ones left out when asked), others, machine out of cores × 100', async (t) => {
  const cpu = { groups: { loadgen: 45.2, server: 91.3, minio: 0.3 }, machine: 190.1, others: 3.3 };
  t.equal(cpuText(cpu, 2), 'loadgen 45%, server 91%, minio 0%, others 3%; machine 190% of 200%');
  t.equal(cpuText(cpu, 2, 0.5), 'loadgen 45%, server 91%, others 3%; machine 190% of 200%');
});

t.test('verdict, loadAverages and table', async (t) => {
  t.equal(verdict(true), '**PASS**');
  t.equal(verdict(false), '**MISS**');
  t.equal(loadAverages([1.2, 1.5, 1.75], [2, 1.8, 1.7]), '1.20 1.50 1.75 / 2.00 1.80 1.70');
  t.same(
    table(
      ['a', 'b'],
      [
        ['1', '2'],
        ['3', '4'],
      ],
    ),
    ['| a | b |', '| --- | --- |', '| 1 | 2 |', '| 3 | 4 |'],
  );
  t.same(table(['only'], []), ['| only |', '| --- |']);
});

t.test('replaceSection replaces one section and leaves the others as they are', async (t) => {
  const file = '# Benchmarks\n\n## bench:a\n\nold a\n\n## bench:b\n\nb text\n';
  t.equal(replaceSection(file, '## bench:a', '## bench:a\n\nnew a\n'), '# Benchmarks\n\n## bench:a\n\nnew a\n\n## bench:b\n\nb text\n');
  t.equal(replaceSection(file, '## bench:b', '## bench:b\n\nnew b'), '# Benchmarks\n\n## bench:a\n\nold a\n\n## bench:b\n\nnew b\n');
  t.equal(replaceSection(file, '## bench:c', '## bench:c\n\nc'), `${file}\n## bench:c\n\nc\n`);
  t.equal(replaceSection('', '## bench:a', '## bench:a\n\nx'), '\n\n## bench:a\n\nx\n');
});

t.test('rewriting every section of bench/results.md with itself changes nothing but extra blank lines', async (t) => {
  const results = readFileSync(new URL('../results.md', import.meta.url), 'utf8');
  const single = (text: string) => text.replace(/\n{3,}/g, '\n\n');
  const lines = results.split('\n');
  const headings = lines.filter((line) => line.startsWith('## '));
  t.ok(headings.length > 0);
  for (const heading of headings) {
    const start = lines.indexOf(heading);
    let end = lines.findIndex((line, index) => index > start && line.startsWith('## '));
    if (end === -1) end = lines.length;
    const section = lines.slice(start, end).join('\n');
    t.equal(single(replaceSection(results, heading, section)), single(results), heading);
  }
});
