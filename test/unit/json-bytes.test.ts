/**
 * JSON written as bytes (json-bytes.ts) is byte for byte the UTF-8 of the
 * JSON text json-text.ts makes, and never more than its worst case.
 */
import t from 'tap';
import { BufferedWriter } from '../../src/trace/buffered-writer.js';
import { JsonBytes, ScratchLine, worstCase } from '../../src/trace/json-bytes.js';
import { jsonString } from '../../src/trace/json-text.js';

const scratch = new ScratchLine();

/** What `write` puts into a buffer, as a string. */
function written(write: (out: JsonBytes) => void): string {
  write(scratch.beginLine(1 << 20));
  return scratch.text();
}

t.test('string() writes jsonString()\'s text, within its worst case', async (t) => {
  const samples = ['', 'plain', 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213', 'quote " and \\ backslash', 'line\nbreak\ttab\r', '\u0000\u001f', '~\u007f', 'é€😀', '\u2028\u2029', 'lone \ud800 surrogate', '\udfff', '\u009b31m\u202e\u2066', 'x'.repeat(70_000)];
  const chars = [0, 9, 10, 27, 31, 32, 34, 65, 92, 126, 127, 0x85, 0x9b, 0xa0, 233, 0x200f, 0x2028, 0x202e, 0x2069, 0xd800, 0xdc00, 0xffff];
  for (let i = 0; i < 3000; i++) {
    let s = '';
    for (let j = 0; j < 8; j++) s += String.fromCharCode(chars[Math.floor(Math.random() * chars.length)]);
    samples.push(s);
  }
  const differing = samples.filter((s) => written((out) => out.string(s)) !== jsonString(s));
  t.same(differing, [], `${samples.length} strings`);
  const over = samples.filter((s) => Buffer.byteLength(jsonString(s)) > worstCase(s));
  t.same(over, [], 'none longer than its worst case');
  t.equal(written((out) => out.nullable(null)), 'null');
  t.equal(written((out) => out.nullable('a"b')), '"a\\"b"');
});

t.test('int() writes String(n); ms() writes String(Math.round(ms * 1000) / 1000)', async (t) => {
  const ints = [0, 1, 9, 10, 99, 100, 12345, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER, -1, 1.5, NaN, 1e300];
  for (let i = 0; i < 5000; i++) ints.push(Math.floor(Math.random() * 10 ** Math.floor(Math.random() * 16)));
  t.same(
    ints.filter((n) => written((out) => out.int(n)) !== String(n)),
    [],
    `${ints.length} integers`,
  );
  const durations = [0, 0.0004, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.12, 0.102, 0.012, 1, 1.2, 1.02, 1.002, 999.9995, 1073741.823, 1073741.824, 5e9, -0, -1.5, NaN, Infinity];
  for (let i = 0; i < 20000; i++) durations.push(i / 1000, Math.random() * 10 ** (Math.random() * 10));
  t.same(
    durations.filter((ms) => written((out) => out.ms(ms)) !== String(Math.round(ms * 1000) / 1000)),
    [],
    `${durations.length} durations`,
  );
});

t.test('a scratch line grows to the room asked for', async (t) => {
  const line = new ScratchLine();
  const text = 'é'.repeat(100_000);
  line.beginLine(worstCase(text)).string(text);
  line.endLine();
  t.equal(line.text(), jsonString(text));
});

t.test('lines begun in a trace file\'s buffer: in order with written ones, across chunks, and dropped (counted) when the disk falls behind', async (t) => {
  const chunks: Buffer[] = [];
  let finish: (() => void)[] = [];
  const writer = new BufferedWriter(99, {
    chunkSize: 64,
    maxBuffered: 256,
    write: (_fd, buffer, offset, length, callback) => {
      chunks.push(Buffer.from(buffer.subarray(offset, offset + length)));
      finish.push(() => callback(null, length));
    },
  });
  const expected: string[] = [];
  for (let i = 0; i < 40; i++) {
    const text = `line ${i} ${'é'.repeat(i)}`;
    const dropped = writer.droppedRecords.backlog;
    if (i % 2 === 0) {
      writer.writeLine(JSON.stringify(text));
    } else {
      const out = writer.beginLine(worstCase(text));
      t.equal(out === null, writer.droppedRecords.backlog > dropped, 'null when dropped');
      if (out !== null) {
        out.string(text);
        writer.endLine();
      }
    }
    if (writer.droppedRecords.backlog === dropped) expected.push(JSON.stringify(text));
  }
  t.ok(writer.droppedRecords.backlog > 0, 'the disk never answered: lines beyond maxBuffered were dropped');
  t.equal(expected.length + writer.droppedRecords.backlog, 40, 'each line written or counted');
  while (finish.length > 0) {
    const pending = finish;
    finish = [];
    for (const done of pending) done();
  }
  const flushed = writer.flush();
  while (finish.length > 0) {
    const pending = finish;
    finish = [];
    for (const done of pending) done();
  }
  await flushed;
  t.same(Buffer.concat(chunks).toString('utf8').split('\n').slice(0, -1), expected);
});
