import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BufferedWriter, type WriterProblem } from '../../src/trace/buffered-writer.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-writer-'));

t.test('lines arrive complete and in order across chunk boundaries', async (t) => {
  const file = path.join(dir, 'nested', 'a.ndjson');
  const writer = BufferedWriter.open(file, { chunkSize: 1024 });
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) {
    // Multi-byte text and varying lengths cross many chunk boundaries.
    const line = JSON.stringify({ i, text: 'é€'.repeat(i % 97) }) + '\n';
    lines.push(line);
    writer.write(line);
  }
  await writer.close();
  t.equal(readFileSync(file, 'utf8'), lines.join(''));
});

t.test('a line larger than the buffer is written whole', async (t) => {
  const file = path.join(dir, 'b.ndjson');
  const writer = BufferedWriter.open(file, { chunkSize: 64 });
  const big = 'x'.repeat(10_000) + '\n';
  writer.write('a\n');
  writer.write(big);
  writer.write('b\n');
  await writer.close();
  t.equal(readFileSync(file, 'utf8'), 'a\n' + big + 'b\n');
});

t.test('a quiet writer still reaches the file after the flush interval', async (t) => {
  const file = path.join(dir, 'c.ndjson');
  const writer = BufferedWriter.open(file, { flushIntervalMs: 20 });
  writer.write('one\n');
  t.equal(readFileSync(file, 'utf8'), '', 'buffered at first');
  await new Promise((r) => setTimeout(r, 200));
  t.equal(readFileSync(file, 'utf8'), 'one\n');
  await writer.close();
});

t.test('when the disk falls behind, lines are dropped and counted, not queued without bound', async (t) => {
  const file = path.join(dir, 'd.ndjson');
  const problems: WriterProblem[] = [];
  const writer = BufferedWriter.open(file, { chunkSize: 1024, maxBuffered: 8 * 1024, onProblem: (p) => problems.push(p) });
  // All of this happens before any asynchronous write can complete.
  for (let i = 0; i < 1000; i++) writer.write('y'.repeat(99) + '\n');
  t.ok(writer.dropped > 0, `dropped ${writer.dropped}`);
  t.same(problems, [{ reason: 'backlog', error: null, suppressed: 0 }], 'told once');
  t.equal(writer.droppedRecords.backlog, writer.dropped, 'counted as backlog');
  await writer.close();
  const written = readFileSync(file, 'utf8');
  t.equal(written.length, (1000 - writer.dropped) * 100, 'whole lines only');
});
