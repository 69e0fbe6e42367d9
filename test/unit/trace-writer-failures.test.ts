/**
 * The trace writer when the disk fails it: a full disk (a sink that takes
 * bytes until it is full, as write(2) does, then answers ENOSPC), /dev/full,
 * a file left with half a line. Records are dropped and counted, never glued
 * to half of another; the warning comes at most once per interval.
 */
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { BufferedWriter, type WriteFunction, type WriterProblem } from '../../src/trace/buffered-writer.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-writer-failures-'));

/** A disk of `capacity` bytes: a write takes what fits (a short write), then ENOSPC. */
class SmallDisk {
  bytes: Buffer[] = [];
  used = 0;
  writes = 0;
  constructor(public capacity: number) {}
  readonly write: WriteFunction = (_fd, buffer, offset, length, callback) => {
    this.writes++;
    const room = this.capacity - this.used;
    setImmediate(() => {
      if (room <= 0) {
        const err = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }) as NodeJS.ErrnoException;
        callback(err, 0);
        return;
      }
      const taken = Math.min(room, length);
      this.bytes.push(Buffer.from(buffer.subarray(offset, offset + taken)));
      this.used += taken;
      callback(null, taken);
    });
  };
  get text(): string {
    return Buffer.concat(this.bytes).toString('utf8');
  }
}

function record(i: number): string {
  return JSON.stringify({ kind: 'statement', i, text: 'x'.repeat(40) });
}

t.test('a full disk: the rest of a torn line is dropped, and the next record starts on a line of its own', async (t) => {
  const disk = new SmallDisk(250);
  const problems: WriterProblem[] = [];
  const writer = new BufferedWriter(99, { chunkSize: 64 * 1024, write: disk.write, onProblem: (p) => problems.push(p) });
  for (let i = 0; i < 10; i++) writer.writeLine(record(i));
  await writer.flush();
  const lineLength = record(0).length + 1;
  const whole = Math.floor(250 / lineLength);
  t.equal(writer.droppedRecords.write_error, 10 - whole, 'every record not written whole is counted, the torn one too');
  t.match(problems, [{ reason: 'write_error', error: /ENOSPC/, suppressed: 0 }]);

  // Space is freed: the next records follow a line break, whole.
  disk.capacity = 10_000;
  for (let i = 10; i < 13; i++) writer.writeLine(record(i));
  await writer.flush();
  const lines = disk.text.split('\n');
  t.equal(lines.at(-1), '', 'ends with a line break');
  const parsed = lines.slice(0, -1).map((line) => {
    try {
      return (JSON.parse(line) as { i: number }).i;
    } catch {
      return 'torn';
    }
  });
  t.same(parsed, [...Array.from({ length: whole }, (_, i) => i), 'torn', 10, 11, 12], 'whole records, one torn line alone, then whole records again');
  t.equal(writer.dropped, 10 - whole);
});

t.test('a write that fails at a line boundary adds no line break', async (t) => {
  const lineLength = record(0).length + 1;
  const disk = new SmallDisk(lineLength * 2);
  const writer = new BufferedWriter(99, { write: disk.write });
  for (let i = 0; i < 5; i++) writer.writeLine(record(i));
  await writer.flush();
  t.equal(writer.droppedRecords.write_error, 3);
  disk.capacity = 10_000;
  writer.writeLine(record(5));
  await writer.flush();
  t.same(disk.text.split('\n').map((l) => (l === '' ? '' : (JSON.parse(l) as { i: number }).i)), [0, 1, 5, '']);
});

t.test('failing writes are reported at most once per interval, with the count of those left out', async (t) => {
  const disk = new SmallDisk(0);
  const problems: WriterProblem[] = [];
  let now = 1_000_000;
  const writer = new BufferedWriter(99, { write: disk.write, onProblem: (p) => problems.push(p), now: () => now });
  for (let i = 0; i < 50; i++) {
    writer.writeLine(record(i));
    await writer.flush();
    now += 100;
  }
  // 50 failed writes in 5 s: one report.
  t.equal(disk.writes, 50);
  t.equal(problems.length, 1, 'one warning, not one per write');
  t.equal(writer.droppedRecords.write_error, 50, 'every record counted');
  now += 10_000;
  writer.writeLine(record(50));
  await writer.flush();
  t.equal(problems.length, 2);
  t.equal(problems[1].suppressed, 49, 'the next report counts the ones left out');
});

t.test('/dev/full (ENOSPC on every write): records counted as dropped, one warning', { skip: !existsSync('/dev/full') && 'no /dev/full' }, async (t) => {
  const problems: WriterProblem[] = [];
  const writer = BufferedWriter.open('/dev/full', { onProblem: (p) => problems.push(p) });
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 10; i++) writer.writeLine(record(i));
    await writer.flush();
  }
  t.equal(writer.droppedRecords.write_error, 200);
  t.equal(problems.length, 1);
  t.match(problems[0], { reason: 'write_error', error: /ENOSPC/ });
  await writer.close();
});

t.test('a file that ends with half a line: the first record starts on a new line', async (t) => {
  const file = path.join(dir, 'torn.ndjson');
  writeFileSync(file, '{"kind":"statement","i":1}\n{"kind":"stat');
  const writer = BufferedWriter.open(file);
  writer.writeLine(record(2));
  await writer.close();
  t.same(readFileSync(file, 'utf8').split('\n'), ['{"kind":"statement","i":1}', '{"kind":"stat', record(2), '']);
});

t.test('reopen: after a rename, new records go to a new file at the path; none lost', async (t) => {
  const file = path.join(dir, 'rotated.ndjson');
  const writer = BufferedWriter.open(file, { chunkSize: 256 });
  for (let i = 0; i < 100; i++) writer.writeLine(record(i));
  // Renamed while writes are in flight, as logrotate does at any moment.
  renameSync(file, file + '.1');
  writer.reopen();
  for (let i = 100; i < 200; i++) writer.writeLine(record(i));
  await writer.flush();
  t.ok(existsSync(file), 'a new file at the path');
  const seen = [file + '.1', file].flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => (JSON.parse(l) as { i: number }).i),
  );
  t.same(seen, Array.from({ length: 200 }, (_, i) => i), 'every record once, in order, whole');
  t.equal(readFileSync(file + '.1', 'utf8').split('\n').length - 1, 100, 'the records written before the reopen stay in the renamed file');
  await writer.close();
});

t.test('reopen when the path cannot be opened: writing goes on into the open file', async (t) => {
  const sub = path.join(dir, 'gone');
  const file = path.join(sub, 'a.ndjson');
  const problems: WriterProblem[] = [];
  const writer = BufferedWriter.open(file, { onProblem: (p) => problems.push(p) });
  writer.writeLine(record(1));
  await writer.flush();
  renameSync(sub, sub + '.old');
  writeFileSync(sub, 'a file where the directory was');
  writer.reopen();
  writer.writeLine(record(2));
  await writer.close();
  t.match(problems, [{ reason: 'reopen_failed', error: /is not a directory/ }]);
  t.same(readFileSync(path.join(sub + '.old', 'a.ndjson'), 'utf8'), `${record(1)}\n${record(2)}\n`);
});
