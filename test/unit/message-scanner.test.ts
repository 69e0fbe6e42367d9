import t from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { Backend, Frontend } from '../../src/protocol/codes.js';
import { commandComplete, errorResponse, readyForQuery } from '../../src/protocol/encode.js';
import { MessageLengthError, MessageScanner, type Verdict } from '../../src/protocol/message-scanner.js';

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

function flags(types: number[]): Uint8Array {
  const table = new Uint8Array(256);
  for (const type of types) table[type] = 1;
  return table;
}

const dataRow = (text: string) => {
  const value = Buffer.from(text);
  const body = Buffer.alloc(2 + 4 + value.length);
  body.writeInt16BE(1, 0);
  body.writeInt32BE(value.length, 2);
  value.copy(body, 6);
  return message(Backend.DataRow, body);
};

/** A server's answer to a query: rows, completion, an error, ReadyForQuery. */
const backendFixture = Buffer.concat([
  message(Backend.RowDescription, Buffer.from('\x00\x01a\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x17\x00\x04\xff\xff\xff\xff\x00\x00', 'latin1')),
  dataRow('1'),
  dataRow('a longer value that spans more bytes'),
  message(Backend.EmptyQueryResponse, Buffer.alloc(0)),
  commandComplete('SELECT 2'),
  errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' }),
  readyForQuery('T'),
]);
const BACKEND_INSPECT = flags([Backend.CommandComplete, Backend.ErrorResponse, Backend.ReadyForQuery, Backend.RowDescription, Backend.EmptyQueryResponse]);

/** A client's pipelined extended-protocol batch and a simple query. */
const frontendFixture = Buffer.concat([
  serialize.parse({ name: 's1', text: 'SELECT $1::int' }),
  serialize.bind({ statement: 's1', portal: '', values: ['42'] }),
  serialize.describe({ type: 'P', name: '' }),
  serialize.execute({ portal: '', rows: 0 }),
  serialize.sync(),
  serialize.query('BEGIN; SELECT 1'),
  serialize.copyData(Buffer.alloc(300, 7)),
  serialize.end(),
]);
const FRONTEND_INSPECT = flags([Frontend.Parse, Frontend.Bind, Frontend.Execute, Frontend.Sync, Frontend.Query, Frontend.Terminate]);

interface Run {
  output: Buffer;
  inspected: string[];
  passed: string[];
}

function feed(chunks: Buffer[], inspect: Uint8Array, decide: (type: number, bytes: Buffer) => Verdict = () => undefined): Run {
  const inspected: string[] = [];
  const passed: string[] = [];
  const scanner = new MessageScanner(
    inspect,
    {
      onMessage(type, buf, start, end) {
        const bytes = Buffer.from(buf.subarray(start, end));
        inspected.push(String.fromCharCode(type) + ':' + bytes.toString('hex'));
        return decide(type, bytes);
      },
      onPassthrough(type) {
        passed.push(String.fromCharCode(type));
      },
    },
    1 << 20,
  );
  const parts: Buffer[] = [];
  for (const chunk of chunks) {
    const out = scanner.push(chunk);
    if (Buffer.isBuffer(out)) parts.push(Buffer.from(out));
    else for (const b of out) parts.push(Buffer.from(b));
    // The scanner may keep a view of the chunk only until push returns: clobber it.
    chunk.fill(0xee);
  }
  t.ok(scanner.idle, 'nothing left pending at the end');
  return { output: Buffer.concat(parts), inspected, passed };
}

function splitsOf(fixture: Buffer): Buffer[][] {
  const cases: Buffer[][] = [];
  for (let i = 0; i <= fixture.length; i++) cases.push([Buffer.from(fixture.subarray(0, i)), Buffer.from(fixture.subarray(i))]);
  // And one byte at a time.
  cases.push([...fixture].map((b) => Buffer.from([b])));
  return cases;
}

for (const [name, fixture, inspect] of [
  ['backend', backendFixture, BACKEND_INSPECT],
  ['frontend', frontendFixture, FRONTEND_INSPECT],
] as const) {
  t.test(`${name} stream: forwarded unchanged and inspected the same at every split`, async (t) => {
    const whole = feed([Buffer.from(fixture)], inspect);
    t.same(whole.output, fixture, 'one chunk comes out unchanged');
    t.ok(whole.inspected.length > 0);
    for (const chunks of splitsOf(fixture)) {
      const run = feed(chunks, inspect);
      if (!run.output.equals(fixture)) t.fail(`output differs for split ${chunks.map((c) => c.length).join('+')}`);
      if (JSON.stringify(run.inspected) !== JSON.stringify(whole.inspected)) t.fail(`inspection differs for split ${chunks.map((c) => c.length).join('+')}`);
      if (JSON.stringify(run.passed) !== JSON.stringify(whole.passed)) t.fail(`pass-through differs for split ${chunks.map((c) => c.length).join('+')}`);
    }
    t.pass(`${fixture.length + 2} splittings checked`);
  });
}

t.test('an unchanged chunk is returned as the same Buffer (no copy)', async (t) => {
  const scanner = new MessageScanner(BACKEND_INSPECT, { onMessage: () => undefined }, 1 << 20);
  const chunk = Buffer.from(backendFixture);
  t.equal(scanner.push(chunk), chunk);
});

t.test('dropping and replacing messages works at every split', async (t) => {
  const replacement = commandComplete('SELECT 99');
  const decide = (type: number): Verdict => {
    if (type === Backend.EmptyQueryResponse) return null;
    if (type === Backend.CommandComplete) return replacement;
    return undefined;
  };
  const expected = Buffer.concat([
    backendFixture.subarray(0, backendFixture.indexOf(Buffer.from([Backend.EmptyQueryResponse, 0, 0, 0, 4]))),
    replacement,
    errorResponse({ severity: 'ERROR', code: '42P01', message: 'relation "x" does not exist' }),
    readyForQuery('T'),
  ]);
  for (const chunks of splitsOf(backendFixture)) {
    const run = feed(chunks, BACKEND_INSPECT, decide);
    if (!run.output.equals(expected)) t.fail(`rewritten output differs for split ${chunks.map((c) => c.length).join('+')}`);
  }
  t.pass('rewrites are exact at every split');
});

t.test('nonsense lengths are refused', async (t) => {
  const scanner = new MessageScanner(BACKEND_INSPECT, { onMessage: () => undefined }, 1000);
  t.throws(() => scanner.push(Buffer.from([Backend.DataRow, 0, 0, 0, 2])), MessageLengthError, 'length below 4');
  const big = new MessageScanner(BACKEND_INSPECT, { onMessage: () => undefined }, 1000);
  t.throws(() => big.push(Buffer.from([Backend.DataRow, 0x7f, 0, 0, 0])), MessageLengthError, 'length above the limit');
  const split = new MessageScanner(BACKEND_INSPECT, { onMessage: () => undefined }, 1000);
  split.push(Buffer.from([Backend.DataRow, 0x7f]));
  t.throws(() => split.push(Buffer.from([0, 0, 0])), MessageLengthError, 'also when the header is split');
});

t.test('a message too large for one chunk passes through without being buffered', async (t) => {
  const big = dataRow('x'.repeat(100_000));
  const scanner = new MessageScanner(BACKEND_INSPECT, { onMessage: () => undefined }, 1 << 20);
  const first = big.subarray(0, 1000);
  t.equal(scanner.push(first), first, 'first part forwarded at once');
  t.notOk(scanner.atBoundary, 'inside a message');
  const rest = big.subarray(1000);
  t.equal(scanner.push(rest), rest);
  t.ok(scanner.atBoundary);
});
