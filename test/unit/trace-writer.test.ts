import t, { type Test } from 'tap';
import { classifyStatement } from '../../src/sql/classify.js';
import { jsonString, terminalSafeJson } from '../../src/trace/json-text.js';
import { BufferedWriter } from '../../src/trace/buffered-writer.js';
import { MemoryTraceSink, ndjsonSink, TraceBus, type TraceSink } from '../../src/trace/trace-sink.js';
import { TraceText, type SqlTraceMode } from '../../src/trace/trace-text.js';
import { isoTime, TraceWriter } from '../../src/trace/trace-writer.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import { TrackedStatement } from '../../src/tracker/statement-record.js';
import { serialize, server } from '../helpers/messages.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../../src/tracker/types.js';

const traceText = (sql: SqlTraceMode) => new TraceText({ sql, maxSqlLength: 16384, maxTagLength: 512 });

t.test('jsonString gives what JSON.stringify gives, with the controls a terminal acts on escaped too', async (t) => {
  const samples = ['', 'plain', 'quote " and \\ backslash', 'line\nbreak\ttab\r', '\u0000\u001f', 'é€😀', '\u2028\u2029', 'lone \ud800 surrogate', '\udfff', '\u009b31m\u202e\u2066'];
  for (let i = 0; i < 2000; i++) {
    // Random strings over the characters that matter.
    const chars = [0, 9, 10, 27, 31, 32, 34, 65, 92, 127, 0x85, 0x9b, 233, 0x200f, 0x2028, 0x202e, 0x2069, 0xd800, 0xdc00, 0xffff];
    let s = '';
    for (let j = 0; j < 8; j++) s += String.fromCharCode(chars[Math.floor(Math.random() * chars.length)]);
    samples.push(s);
  }
  for (const s of samples) {
    const json = jsonString(s);
    if (json !== terminalSafeJson(JSON.stringify(s))) t.fail(`differs for ${JSON.stringify(s)}`);
    if (JSON.parse(json) !== s) t.fail(`does not read back for ${JSON.stringify(s)}`);
    if (/[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/.test(json)) t.fail(`a raw control character in ${json}`);
  }
  t.equal(jsonString('\u009b2J \u202eabc'), '"\\u009b2J \\u202eabc"');
  t.pass(`${samples.length} strings`);
});

t.test('records written through the bus: no raw C1 or bidi control, the same values when read', async (t) => {
  const lines: string[] = [];
  const bus = new TraceBus();
  bus.attach({ writeLine: (line) => lines.push(line), flush: async () => undefined });
  const record = { kind: 'policy', message: 'a\u009b2Jb \u202eevil', nested: { text: '\u0085' } };
  bus.write(record);
  t.notMatch(lines[0], /[\u0080-\u009f\u202e]/);
  t.same(JSON.parse(lines[0]), record);
});

const session: SessionInfo = {
  id: '7',
  user: 'app',
  database: 'shop "main"',
  applicationName: 'web',
  clientAddress: '127.0.0.1',
  startedAt: 0,
  backendPid: 4242,
  replication: false,
};
const request: RequestInfo = {
  id: '7.r2',
  traceId: '5bd66ef5095369c7b0d1f8f4bd33716a',
  route: '/checkout',
  controller: 'orders',
  action: null,
  application: null,
  framework: null,
  tags: { route: '/checkout', controller: 'orders', traceparent: '00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01' },
};

t.test('statement and transaction records are valid JSON with every field', async (t) => {
  const bus = new TraceBus();
  const sink = new MemoryTraceSink();
  bus.attach(sink);
  const writer = new TraceWriter(bus, traceText('full'));
  const sql = "INSERT INTO t VALUES ('it''s', E'\\n')";
  const statement: StatementRecord = {
    seq: 3,
    sessionId: '7',
    transactionId: '7.t2',
    protocol: 'extended',
    text: sql,
    info: classifyStatement(sql),
    statementName: 'ins "1"',
    request,
    startedAt: Date.UTC(2026, 10, 23, 12, 0, 0, 5),
    startMono: 0,
    durationMs: 1.23456,
    txStatusBefore: 'T',
    txStatusAfter: 'E',
    commandTag: null,
    rows: null,
    dataRows: 0,
    error: { severity: 'ERROR', severityV: 'ERROR', code: '23505', message: 'duplicate key value violates unique constraint "t_pkey"' },
    savepointDepth: 1,
    lockWaitMs: 12.5,
    suspended: false,
    interrupted: false,
    copy: null,
  };
  writer.statementFinished(session, statement);
  const tx: TransactionRecord = {
    id: '7.t2',
    sessionId: '7',
    startedAt: Date.UTC(2026, 10, 23, 12, 0, 0, 0),
    startMono: 0,
    endedAt: Date.UTC(2026, 10, 23, 12, 0, 1, 0),
    durationMs: 1000,
    outcome: 'failed',
    implicit: false,
    statements: 4,
    writes: 1,
    savepointsCreated: 1,
    savepointsReleased: 0,
    savepointsRolledBack: 1,
    maxSavepointDepth: 1,
    idleInTransactionMs: 3.5,
    lockWaitMs: 12.5,
    firstError: { code: '23505', message: 'duplicate "key"' },
    failed: true,
    request,
    statementLog: [],
  };
  writer.transactionEnded(session, tx);
  const [s, x] = sink.records;
  t.same(s, {
    kind: 'statement',
    time: '2026-11-23T12:00:00.005Z',
    duration_ms: 1.235,
    'session.id': '7',
    'transaction.id': '7.t2',
    'statement.seq': 3,
    'db.system.name': 'postgresql',
    'db.namespace': 'shop "main"',
    'db.operation.name': 'INSERT',
    'db.query.text': sql,
    'pg.command_tag': null,
    'pg.tx_status_before': 'T',
    'pg.tx_status_after': 'E',
    'pg.protocol': 'extended',
    'pg.backend_pid': 4242,
    'pg.savepoint_depth': 1,
    'pg.statement_name': 'ins "1"',
    'pg.lock_wait_ms': 12.5,
    'db.response.status_code': '23505',
    'error.message': 'duplicate key value violates unique constraint "t_pkey"',
    'error.severity': 'ERROR',
    'request.id': '7.r2',
    trace_id: '5bd66ef5095369c7b0d1f8f4bd33716a',
    'http.route': '/checkout',
    controller: 'orders',
    sqlcommenter: request.tags,
  });
  t.match(x, {
    kind: 'transaction',
    time: '2026-11-23T12:00:00.000Z',
    end: '2026-11-23T12:00:01.000Z',
    duration_ms: 1000,
    outcome: 'failed',
    implicit: false,
    statements: 4,
    writes: 1,
    'savepoints.created': 1,
    'savepoints.rolled_back': 1,
    idle_in_transaction_ms: 3.5,
    lock_wait_ms: 12.5,
    first_error: { code: '23505', message: 'duplicate "key"' },
    'request.id': '7.r2',
    'http.route': '/checkout',
  });
});

t.test('with trace.sql off the text is left out; with no sink nothing is built', async (t) => {
  const bus = new TraceBus();
  const sink = new MemoryTraceSink();
  const detach = bus.attach(sink);
  const writer = new TraceWriter(bus, traceText('off'));
  const statement = { seq: 1, sessionId: '7', transactionId: null, protocol: 'simple', text: 'SELECT secret', info: classifyStatement('SELECT 1'), statementName: null, request: { ...request, tags: null }, startedAt: 0, startMono: 0, durationMs: 0, txStatusBefore: 'I', txStatusAfter: 'I', commandTag: 'SELECT 1', rows: 1, dataRows: 1, error: null, savepointDepth: 0, lockWaitMs: 0, suspended: false, interrupted: false, copy: null } as StatementRecord;
  writer.statementFinished(session, statement);
  t.notOk('db.query.text' in sink.records[0]);
  t.equal(sink.records[0]['db.response.returned_rows'], 1);
  detach();
  writer.statementFinished(session, statement);
  t.equal(sink.records.length, 1);
});

t.test('a sink that reads only standalone records (the OpenTelemetry events) gets no session, statement or transaction record, and none is built for it', async (t) => {
  const bus = new TraceBus();
  const built: string[] = [];
  const lines: string[] = [];
  bus.attach({ writeLine: (line) => lines.push(line), flush: async () => {}, wantsTranscript: false });
  const writer = new TraceWriter(bus, traceText('full'));
  const statementLine = writer.statementLine.bind(writer);
  const transactionLine = writer.transactionLine.bind(writer);
  writer.statementLine = (...args) => (built.push('statement'), statementLine(...args));
  writer.transactionLine = (...args) => (built.push('transaction'), transactionLine(...args));
  let now = 1000;
  const tracker = new SessionTracker(session, writer, { wall: () => Date.UTC(2026, 10, 23), mono: () => now });
  tracker.start();
  const query = serialize.query('SELECT 1');
  tracker.onClientMessage(query[0], query, 0, query.length);
  now += 1;
  for (const message of [server.complete('SELECT 1'), server.ready('I')]) tracker.onServerMessage(message[0], message, 0, message.length);
  tracker.end(true);
  t.same(built, [], 'no statement line built');
  t.same(lines, [], 'nothing written to it');
  bus.write({ kind: 'policy', 'session.id': session.id });
  t.equal(lines.length, 1, 'a standalone record still reaches it');
  t.notOk(bus.writesTranscript);
  bus.attach(new MemoryTraceSink());
  t.ok(bus.writesTranscript, 'a trace file or a /events reader wants them all');
});

/** What the records must read, field for field in the documented order: JSON.stringify of the same fields. */
function expectedStatementLine(session: SessionInfo, s: StatementRecord): string {
  const r: Record<string, unknown> = {
    kind: 'statement',
    time: new Date(s.startedAt).toISOString(),
    duration_ms: Math.round(s.durationMs * 1000) / 1000,
    'session.id': session.id,
    'transaction.id': s.transactionId,
    'statement.seq': s.seq,
    'db.system.name': 'postgresql',
    'db.namespace': session.database,
    'db.operation.name': s.info.operation,
    'db.query.text': s.text,
    'pg.command_tag': s.commandTag,
    'pg.tx_status_before': s.txStatusBefore,
    'pg.tx_status_after': s.txStatusAfter,
    'pg.protocol': s.protocol,
    'pg.backend_pid': session.backendPid,
    'pg.savepoint_depth': s.savepointDepth,
  };
  if (s.rows !== null) r['db.response.returned_rows'] = s.rows;
  if (s.statementName !== null) r['pg.statement_name'] = s.statementName;
  if (s.lockWaitMs > 0) r['pg.lock_wait_ms'] = Math.round(s.lockWaitMs * 1000) / 1000;
  if (s.error !== null) Object.assign(r, { 'db.response.status_code': s.error.code, 'error.message': s.error.message, 'error.severity': s.error.severityV ?? s.error.severity });
  if (s.interrupted) r['pg.interrupted'] = true;
  if (s.suspended) r['pg.portal_suspended'] = true;
  if (s.copy !== null) r['pg.copy'] = s.copy;
  r['request.id'] = s.request.id;
  return JSON.stringify(r);
}

function expectedTransactionLine(session: SessionInfo, x: TransactionRecord): string {
  const r: Record<string, unknown> = {
    kind: 'transaction',
    time: new Date(x.startedAt).toISOString(),
    end: new Date(x.endedAt).toISOString(),
    duration_ms: Math.round(x.durationMs * 1000) / 1000,
    'transaction.id': x.id,
    'session.id': session.id,
    'db.namespace': session.database,
    'pg.backend_pid': session.backendPid,
    outcome: x.outcome,
    implicit: x.implicit,
    statements: x.statements,
    writes: x.writes,
  };
  if (x.savepointsCreated > 0) {
    Object.assign(r, { 'savepoints.created': x.savepointsCreated, 'savepoints.released': x.savepointsReleased, 'savepoints.rolled_back': x.savepointsRolledBack, 'savepoints.max_depth': x.maxSavepointDepth });
  }
  if (x.idleInTransactionMs > 0) r.idle_in_transaction_ms = Math.round(x.idleInTransactionMs * 1000) / 1000;
  if (x.lockWaitMs > 0) r.lock_wait_ms = Math.round(x.lockWaitMs * 1000) / 1000;
  if (x.firstError !== null) r.first_error = { code: x.firstError.code, message: x.firstError.message };
  r['request.id'] = x.request.id;
  return JSON.stringify(r);
}

/** A trace file's sink whose writes land in memory: records are encoded into its buffer, never made strings. */
function fileSink(chunkSize: number): { sink: TraceSink; lines: () => Promise<string[]> } {
  const chunks: Buffer[] = [];
  const writer = new BufferedWriter(99, {
    chunkSize,
    write: (_fd, buffer, offset, length, callback) => {
      chunks.push(Buffer.from(buffer.subarray(offset, offset + length)));
      setImmediate(() => callback(null, length));
    },
  });
  return {
    sink: ndjsonSink(writer),
    lines: async () => {
      await writer.flush();
      return Buffer.concat(chunks).toString('utf8').split('\n').slice(0, -1);
    },
  };
}

for (const into of ['strings', 'a trace file\'s buffer'] as const) {
  t.test(`the hand-built records are, character for character, what JSON.stringify makes of their fields (into ${into})`, async (t) => {
    const bus = new TraceBus();
    const lines: string[] = [];
    const file = fileSink(4096);
    if (into === 'strings') bus.attach({ writeLine: (line) => lines.push(line), flush: async () => undefined });
    else bus.attach(file.sink);
    await recordsAsJsonStringifyWritesThem(t, bus, async () => (into === 'strings' ? lines : await file.lines()));
  });
}

async function recordsAsJsonStringifyWritesThem(t: Test, bus: TraceBus, lines: () => Promise<string[]>): Promise<void> {
  const writer = new TraceWriter(bus, traceText('full'));
  const texts = ['SELECT 1', 'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;', "INSERT INTO t VALUES ('it''s', E'\\n\t')", 'SELECT \'é€😀\'', 'SELECT "\u2028"', 'x'.repeat(70)];
  const pick = <T>(values: T[]): T => values[Math.floor(Math.random() * values.length)];
  const expected: string[] = [];
  const plainRequest: RequestInfo = { ...request, id: '7.r9', tags: null, traceId: null, route: null, controller: null };
  for (let i = 0; i < 400; i++) {
    const text = pick(texts);
    const s: StatementRecord = {
      seq: i,
      sessionId: session.id,
      transactionId: pick([null, `7.t${i}`]),
      protocol: pick(['simple', 'extended'] as const),
      text,
      info: classifyStatement(text),
      statementName: pick([null, '', 'stmt_1', 'ins "1"']),
      request: plainRequest,
      startedAt: Date.UTC(2026, 10, 23, 12, 0, 0, i),
      startMono: 0,
      durationMs: pick([0, 0.001, 0.0425, 1.5, 12345.6789, Math.random() * 100]),
      txStatusBefore: pick(['I', 'T', 'E'] as const),
      txStatusAfter: pick([null, 'I', 'T', 'E'] as const),
      commandTag: pick([null, 'SELECT 1', 'INSERT 0 1', 'UPDATE 10']),
      rows: pick([null, 0, 1, 1000000]),
      dataRows: 0,
      error: pick([null, { severity: 'ERROR', severityV: 'ERROR', code: '40001', message: 'could not serialize access due to "concurrent" update\n' }]),
      savepointDepth: pick([0, 1, 12]),
      lockWaitMs: pick([0, 0, 250.125]),
      suspended: pick([false, true]),
      interrupted: pick([false, true]),
      copy: pick([null, 'in', 'out']),
    };
    writer.statementFinished(session, s);
    expected.push(expectedStatementLine(session, s));
    const x: TransactionRecord = {
      id: `7.t${i}`,
      sessionId: session.id,
      startedAt: Date.UTC(2026, 10, 23, 12, 0, 0, i),
      startMono: 0,
      endedAt: Date.UTC(2026, 10, 23, 12, 0, 1, i),
      durationMs: pick([0.002, 1000, Math.random() * 10]),
      outcome: pick([null, 'commit', 'rollback', 'failed', 'disconnect', 'prepared'] as const),
      implicit: pick([true, false]),
      statements: pick([0, 1, 77]),
      writes: pick([0, 3]),
      savepointsCreated: pick([0, 2]),
      savepointsReleased: 1,
      savepointsRolledBack: 1,
      maxSavepointDepth: 2,
      idleInTransactionMs: pick([0, 3.25]),
      lockWaitMs: pick([0, 7]),
      firstError: pick([null, { code: '23505', message: 'duplicate "key"' }]),
      failed: false,
      request: plainRequest,
      statementLog: [],
    };
    writer.transactionEnded(session, x);
    expected.push(expectedTransactionLine(session, x));
  }
  const written = await lines();
  t.equal(written.length, expected.length);
  t.equal(written.findIndex((line, i) => line !== expected[i]), -1, 'every line as JSON.stringify writes it');
}

t.test('session end: duration_ms from the monotonic clock, with microseconds like every other duration', async (t) => {
  const bus = new TraceBus();
  const sink = new MemoryTraceSink();
  bus.attach(sink);
  const listener = new TraceWriter(bus, traceText('full'));
  let now = 1000;
  const tracker = new SessionTracker(session, listener, { wall: () => Date.UTC(2026, 10, 23), mono: () => now });
  tracker.start();
  now += 2.3456;
  tracker.end(true);
  t.match(sink.records.at(-1), { kind: 'session', event: 'end', duration_ms: 2.346, clean: true });
});

t.test('isoTime writes what Date.toISOString() does', async (t) => {
  const now = Date.UTC(2026, 11, 7, 11, 31, 47, 123);
  const times = [now, now + 1, now + 876, now + 877, now + 1000, now - 1, 0, 999, 1000, -1, -1001, 8.64e15, 253402300800000, now + 0.5, now + 61_000];
  for (let ms = now - 2500; ms < now + 2500; ms += 37) times.push(ms);
  for (const ms of times) t.equal(isoTime(ms), new Date(ms).toISOString(), String(ms));
  t.equal(isoTime(now), '2026-12-07T11:31:47.123Z');
});

t.test('statements of Queries of a known shape: their text is written from the Query\'s bytes as it was sent', async (t) => {
  const texts = [
    'SELECT abalance FROM pgbench_accounts WHERE aid = 48213;',
    'UPDATE t SET v = v + 5 WHERE id = 1234; SELECT 42',
    'SELECT "v" FROM t WHERE id = 7',
    'SELECT 1\nFROM t',
    `SELECT ${'x, '.repeat(40)}1`,
  ];
  const rendered = { count: 0 };
  const writeText = TrackedStatement.prototype.writeText;
  TrackedStatement.prototype.writeText = function (out, pos) {
    rendered.count++;
    return writeText.call(this, out, pos);
  };
  t.teardown(() => {
    TrackedStatement.prototype.writeText = writeText;
  });
  for (const into of ['strings', 'a trace file\'s buffer'] as const) {
    const bus = new TraceBus();
    const lines: string[] = [];
    const file = fileSink(1024);
    if (into === 'strings') bus.attach({ writeLine: (line) => lines.push(line), flush: async () => undefined });
    else bus.attach(file.sink);
    const text = new TraceText({ sql: 'full', maxSqlLength: 100, maxTagLength: 512 });
    const tracker = new SessionTracker(session, new TraceWriter(bus, text), { wall: () => Date.UTC(2026, 10, 23), mono: () => 0 });
    tracker.start();
    const sent: string[] = [];
    // Each text three times, each time with other literals: the first teaches the shape, the others are recognised in bytes.
    for (let round = 0; round < 3; round++) {
      for (const base of texts) {
        const sql = base.replace(/\d+/g, (digits) => String(Number(digits) + round).padStart(digits.length, '0'));
        const query = serialize.query(sql);
        tracker.onClientMessage(query[0], query, 0, query.length);
        const statements = sql.split(';').filter((s) => s.trim() !== '');
        for (const statement of statements) {
          const complete = server.complete('SELECT 1');
          tracker.onServerMessage(complete[0], complete, 0, complete.length);
          sent.push(text.sql(statement.trim())!);
        }
        const ready = server.ready('I');
        tracker.onServerMessage(ready[0], ready, 0, ready.length);
      }
    }
    tracker.end(true);
    const records = (into === 'strings' ? lines : await file.lines()).map((line) => JSON.parse(line) as Record<string, unknown>);
    t.same(
      records.filter((r) => r.kind === 'statement').map((r) => r['db.query.text']),
      sent,
      `into ${into}: each statement's text as sent, cut where it is too long`,
    );
  }
  t.ok(rendered.count >= 8, `written from bytes: ${rendered.count} of them (the json-safe, short ones after the first round)`);
});
