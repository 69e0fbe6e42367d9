import t from 'tap';
import { serialize } from '../../src/protocol/frontend-messages.js';
import { Backend, Frontend } from '../../src/protocol/codes.js';
import { commandComplete, errorResponse, readyForQuery } from '../../src/protocol/encode.js';
import { MessageLimits, PG_MAX_AUTH_TOKEN_LENGTH, PQ_SMALL_MESSAGE_LIMIT } from '../../src/protocol/message-limits.js';
import { Inspect, MessageLengthError, MessageScanner, type Verdict } from '../../src/protocol/message-scanner.js';

function message(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(5 + body.length);
  out[0] = type;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** A 5-byte header declaring `length`, with no body. */
function messageWithLength(type: number, length: number): Buffer {
  const header = Buffer.from([type, 0, 0, 0, 0]);
  header.writeInt32BE(length, 1);
  return header;
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

function feed(chunks: Buffer[], inspect: Uint8Array, decide: (type: number, bytes: Buffer) => Verdict = () => undefined, limits: MessageLimits | number = 1 << 20): Run {
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
    limits,
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

/** A FunctionCall ('F'): function oid, one text argument, text result. */
function functionCall(argument: Buffer): Buffer {
  const body = Buffer.alloc(4 + 2 + 2 + 4 + argument.length + 2);
  let pos = body.writeInt32BE(1299, 0);
  pos = body.writeInt16BE(0, pos);
  pos = body.writeInt16BE(1, pos);
  pos = body.writeInt32BE(argument.length, pos);
  pos += argument.copy(body, pos);
  body.writeInt16BE(0, pos);
  return message(Frontend.FunctionCall, body);
}

/** The header and the first `strings` NUL-terminated strings of a message. */
function headOf(msg: Buffer, strings: number): Buffer {
  let pos = 5;
  for (let i = 0; i < strings; i++) pos = msg.indexOf(0, pos) + 1;
  return msg.subarray(0, pos);
}

const bigBind = serialize.bind({ portal: 'p1', statement: 's1', values: ['v'.repeat(300), Buffer.alloc(200, 0), null, 'tail'] });
/** Extended-protocol traffic whose Bind and FunctionCall carry values the tracker never reads. */
const headFixture = Buffer.concat([
  serialize.parse({ name: 's1', text: 'SELECT $1, $2, $3, $4' }),
  bigBind,
  serialize.execute({ portal: 'p1', rows: 1 }),
  serialize.sync(),
  functionCall(Buffer.alloc(120, 0)),
  serialize.bind({ portal: '', statement: '', values: [] }),
  serialize.sync(),
]);
const HEAD_INSPECT = flags([Frontend.Parse, Frontend.Execute, Frontend.Sync]);
HEAD_INSPECT[Frontend.Bind] = Inspect.head(2);
HEAD_INSPECT[Frontend.FunctionCall] = Inspect.head(0);

t.test('head-inspected messages: only the head is handed over, the rest streams, at every split', async (t) => {
  const whole = feed([Buffer.from(headFixture)], HEAD_INSPECT);
  t.same(whole.output, headFixture);
  const handed = whole.inspected.filter((x) => x.startsWith('B:') || x.startsWith('F:'));
  t.same(
    handed,
    [headOf(bigBind, 2), headOf(functionCall(Buffer.alloc(120, 0)), 0), headOf(serialize.bind({ portal: '', statement: '', values: [] }), 2)].map(
      (h) => String.fromCharCode(h[0]) + ':' + h.toString('hex'),
    ),
    'Bind: header and portal and statement names; FunctionCall: the header',
  );
  for (const chunks of splitsOf(headFixture)) {
    const run = feed(chunks, HEAD_INSPECT);
    if (!run.output.equals(headFixture)) t.fail(`output differs for split ${chunks.map((c) => c.length).join('+')}`);
    if (JSON.stringify(run.inspected) !== JSON.stringify(whole.inspected)) t.fail(`inspection differs for split ${chunks.map((c) => c.length).join('+')}`);
  }
  t.pass(`${headFixture.length + 2} splittings checked`);
});

t.test('a verdict on a head stands for the head; DROP drops the whole message, at every split', async (t) => {
  const prefix = serialize.flush();
  const bindStart = headFixture.indexOf(bigBind);
  const prefixed = Buffer.concat([headFixture.subarray(0, bindStart), prefix, headFixture.subarray(bindStart)]);
  const dropped = Buffer.concat([headFixture.subarray(0, bindStart), headFixture.subarray(bindStart + bigBind.length)]);
  const cases: [string, (type: number, bytes: Buffer) => Verdict, Buffer][] = [
    ['own message put ahead of the Bind', (type, bytes) => (type === Frontend.Bind && bytes.includes('p1') ? Buffer.concat([prefix, bytes]) : undefined), prefixed],
    ['Bind dropped', (type, bytes) => (type === Frontend.Bind && bytes.includes('p1') ? null : undefined), dropped],
  ];
  for (const [name, decide, expected] of cases) {
    for (const chunks of splitsOf(headFixture)) {
      const run = feed(chunks, HEAD_INSPECT, decide);
      if (!run.output.equals(expected)) t.fail(`${name}: output differs for split ${chunks.map((c) => c.length).join('+')}`);
    }
    t.pass(`${name}: exact at every split`);
  }
});

t.test('a Bind whose names span chunks is held only up to its names; its values go on as they arrive', async (t) => {
  const values = Buffer.alloc(1 << 20, 7);
  const bind = serialize.bind({ portal: 'a portal name', statement: 'a statement name', values: [values] });
  const heads: Buffer[] = [];
  const scanner = new MessageScanner(HEAD_INSPECT, { onMessage: (_t, b, s, e) => (heads.push(Buffer.from(b.subarray(s, e))), undefined) }, 1 << 30);
  const first = bind.subarray(0, 10); // inside the portal name
  const out1 = scanner.push(Buffer.from(first));
  t.same(out1, [], 'nothing forwarded while the names are incomplete');
  const second = Buffer.from(bind.subarray(10, 64 * 1024));
  const out2 = scanner.push(second) as Buffer[];
  t.same(heads, [headOf(bind, 2)], 'the names were handed over');
  t.same(Buffer.concat(out2), bind.subarray(0, 64 * 1024), 'the head, then the rest of the chunk');
  t.equal(out2.at(-1)!.buffer, second.buffer, 'the rest of the chunk is forwarded as a view, not a copy');
  for (let pos = 64 * 1024; pos < bind.length; pos += 64 * 1024) {
    const chunk = Buffer.from(bind.subarray(pos, pos + 64 * 1024));
    t.equal(scanner.push(chunk), chunk, `bytes at ${pos} forwarded as they came`);
  }
  t.ok(scanner.idle);
});

t.test('a long inspected message is reassembled in linear time', async (t) => {
  // Joining what was held on every chunk (quadratic) took 6 s of CPU for this; collecting in one buffer takes milliseconds.
  const sql = 'SELECT ' + "'".padEnd(16 * 1024 * 1024, 'x') + "'";
  const query = serialize.query(sql);
  let delivered: Buffer | null = null;
  const scanner = new MessageScanner(FRONTEND_INSPECT, { onMessage: (_t, b, s, e) => ((delivered = Buffer.from(b.subarray(s, e))), undefined) }, 1 << 30);
  const out: Buffer[] = [];
  // CPU time, not wall time: the machine may be busy with other work.
  const started = process.cpuUsage();
  for (let pos = 0; pos < query.length; pos += 8 * 1024) {
    const result = scanner.push(query.subarray(pos, pos + 8 * 1024));
    for (const b of Buffer.isBuffer(result) ? [result] : result) out.push(b);
  }
  const used = process.cpuUsage(started);
  const elapsed = (used.user + used.system) / 1000;
  t.ok(delivered !== null && (delivered as Buffer).equals(query), 'handed over whole');
  t.ok(Buffer.concat(out).equals(query), 'forwarded whole');
  t.ok(elapsed < 1000, `16 MiB in 8 KiB chunks took ${elapsed.toFixed(1)} ms of CPU`);
});

t.test("PostgreSQL's per-type limits: small messages capped at PQ_SMALL_MESSAGE_LIMIT once logged in", async (t) => {
  const limits = MessageLimits.frontend(0x3ffffffe);
  const scanner = () => new MessageScanner(FRONTEND_INSPECT, { onMessage: () => undefined }, limits);
  for (const type of [Frontend.Sync, Frontend.Flush, Frontend.Close, Frontend.Describe, Frontend.Execute, Frontend.Terminate, Frontend.CopyDone, Frontend.CopyFail]) {
    const name = String.fromCharCode(type);
    t.doesNotThrow(() => scanner().push(Buffer.from([type, 0, 0, 0x27, 0x10])), `'${name}' of ${PQ_SMALL_MESSAGE_LIMIT} bytes accepted`);
    t.throws(
      () => scanner().push(Buffer.from([type, 0, 0, 0x27, 0x11])),
      { name: 'MessageLengthError', source: 'postgresql', limit: PQ_SMALL_MESSAGE_LIMIT, message: `message type '${name}' of 10001 bytes exceeds the limit of 10000 bytes that PostgreSQL sets for it` },
      `'${name}' of ${PQ_SMALL_MESSAGE_LIMIT + 1} bytes refused on its header`,
    );
  }
  for (const type of [Frontend.Query, Frontend.Parse, Frontend.Bind, Frontend.FunctionCall, Frontend.CopyData]) {
    t.doesNotThrow(() => scanner().push(Buffer.from([type, 0x3f, 0xff, 0xff, 0xfe])), `'${String.fromCharCode(type)}' may be as long as max_message_length`);
  }
  t.throws(() => scanner().push(Buffer.from([Frontend.Query, 0x3f, 0xff, 0xff, 0xff])), { name: 'MessageLengthError', source: 'max_message_length' });
  const lowered = new MessageScanner(FRONTEND_INSPECT, { onMessage: () => undefined }, MessageLimits.frontend(2048));
  t.throws(() => lowered.push(Buffer.from([Frontend.Sync, 0, 0, 0x08, 0x01])), { name: 'MessageLengthError', source: 'max_message_length', limit: 2048 }, 'a lower max_message_length wins');
});

t.test('before authentication: nothing longer than an authentication response, refused on the header alone', async (t) => {
  const limits = MessageLimits.beforeAuthentication(0x3ffffffe);
  let handed = 0;
  const scanner = () => new MessageScanner(flags([Frontend.Password]), { onMessage: () => (handed++, undefined) }, limits);
  const accepted = scanner();
  const fine = message(Frontend.Password, Buffer.alloc(PG_MAX_AUTH_TOKEN_LENGTH - 4, 1));
  t.equal(accepted.push(fine), fine, 'forwarded unchanged');
  t.equal(handed, 1, `a 'p' of ${PG_MAX_AUTH_TOKEN_LENGTH} bytes is handed over`);
  const gigabyte = messageWithLength(Frontend.Password, 1_000_000_000);
  t.throws(() => scanner().push(gigabyte), {
    name: 'MessageLengthError',
    source: 'authentication',
    message: "message type 'p' of 1000000000 bytes exceeds the limit of 65535 bytes that PostgreSQL sets before authentication",
  }, "a 'p' declaring 1 GB is refused from its 5-byte header, before any of its body");
  const split = scanner();
  t.same(split.push(gigabyte.subarray(0, 3)), [], 'a split header is held (5 bytes at most)');
  t.throws(() => split.push(gigabyte.subarray(3)), { name: 'MessageLengthError', source: 'authentication' }, 'and refused once complete');
  t.throws(() => scanner().push(Buffer.from([Frontend.Query, 0, 1, 0, 0])), { name: 'MessageLengthError', source: 'authentication' }, 'other types too: txproxy would have to hold them');
  const switched = scanner();
  switched.setLimits(MessageLimits.frontend(0x3ffffffe));
  t.doesNotThrow(() => switched.push(Buffer.from([Frontend.Query, 0, 1, 0, 0])), 'once logged in, the session limits apply');
});
