import t from 'tap';
import { Progress } from './progress.js';

function fakeTerminal(tty: boolean, totalBytes = 1000, files = 2) {
  let clock = 0;
  const written: string[] = [];
  const progress = new Progress({
    totalBytes,
    files,
    tty,
    write: (text) => written.push(text),
    now: () => clock,
    redrawMs: 100,
    plainEveryMs: 10_000,
    barWidth: 10,
  });
  return {
    progress,
    written,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

t.test('a terminal sees the bar move per byte of a file in flight, redrawn at most every redrawMs', async (t) => {
  const { progress, written, advance } = fakeTerminal(true);
  advance(1000);
  progress.sent('big.ndjson', 100);
  t.same(written, ['\r\x1b[K[#.........]  10%  0.0/0.0 MB  0/2 files  0.0 MB/s'], 'the first bytes draw at once');
  advance(50);
  progress.sent('big.ndjson', 100);
  progress.sent('big.ndjson', 100);
  t.equal(written.length, 1, 'chunks within redrawMs of the last draw only count');
  advance(50);
  progress.sent('big.ndjson', 200);
  t.equal(written.length, 2);
  t.match(written[1], /\[#####\.\.\.\.\.\] {2}50% {2}.*0\/2 files/, 'half of the bytes out, no file finished yet');
  t.equal(progress.sentBytes, 500);
});

t.test('a retry sends a file from its first byte again; a finished file counts whole', async (t) => {
  const { progress, written, advance } = fakeTerminal(true, 1000, 2);
  progress.sent('a.json', 300);
  progress.restart('a.json');
  t.equal(progress.sentBytes, 0, "the failed attempt's bytes no longer count");
  progress.sent('b.json', 100);
  progress.finished('a.json', 600);
  t.equal(progress.sentBytes, 700);
  t.match(written.at(-1), /70%.*1\/2 files/, 'a finished file redraws at once');
  advance(1000);
  progress.finished('b.json', 400);
  t.match(written.at(-1), /\[##########\] 100%.*2\/2 files/);
});

t.test('a note goes on its own line and the bar is redrawn under it; end leaves a fresh line', async (t) => {
  const { progress, written } = fakeTerminal(true);
  progress.sent('a.json', 100);
  written.length = 0;
  progress.note('a.json: request id imp-1');
  t.equal(written[0], '\r\x1b[Ka.json: request id imp-1\n', 'the bar line is cleared first');
  t.match(written[1], /^\r\x1b\[K\[#/, 'then the bar again');
  progress.end();
  t.equal(written.at(-1), '\n');
});

t.test('without a terminal: notes as lines, a plain progress line at most every plainEveryMs while bytes flow', async (t) => {
  const { progress, written, advance } = fakeTerminal(false, 1000, 1);
  progress.note('a.json: request id imp-1');
  progress.sent('a.json', 100);
  advance(9_999);
  progress.sent('a.json', 100);
  t.same(written, ['a.json: request id imp-1\n'], 'no progress line before a whole interval');
  advance(1);
  progress.sent('a.json', 100);
  t.equal(written.length, 2);
  t.match(written[1], /^progress \[###\.+\] {2}30% {2}.*0\/1 files {2}.* MB\/s\n$/);
  advance(5_000);
  progress.sent('a.json', 100);
  t.equal(written.length, 2, 'throttled');
  progress.finished('a.json', 1000);
  progress.end();
  t.equal(written.length, 2, 'no bar to close, no redraw escape codes');
  t.notOk(written.join('').includes('\r'), 'no carriage returns in a log');
});
