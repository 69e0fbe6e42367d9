import t from 'tap';
import { classifyStatement } from '../../src/sql/classify.js';
import { jsonMs, jsonNullable, jsonString } from '../../src/trace/json-text.js';
import { MemoryTraceSink, TraceBus } from '../../src/trace/trace-sink.js';
import { TraceWriter } from '../../src/trace/trace-writer.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../../src/tracker/types.js';

t.test('jsonString gives exactly what JSON.stringify gives', async (t) => {
  const samples = ['', 'plain', 'quote " and \\ backslash', 'line\nbreak\ttab\r', '\u0000\u001f', 'é€😀', '\u2028\u2029', 'lone \ud800 surrogate', '\udfff'];
  for (let i = 0; i < 2000; i++) {
    // Random strings over the characters that matter.
    let s = '';
    for (let j = 0; j < 8; j++) s += String.fromCharCode([0, 9, 10, 31, 32, 34, 65, 92, 127, 233, 0x2028, 0xd800, 0xdc00, 0xffff][Math.floor(Math.random() * 14)]);
    samples.push(s);
  }
  for (const s of samples) if (jsonString(s) !== JSON.stringify(s)) t.fail(`differs for ${JSON.stringify(s)}`);
  t.equal(jsonNullable(null), 'null');
  t.equal(jsonMs(1.23456), '1.235');
  t.pass(`${samples.length} strings`);
});

t.test('jsonMs prints what String(Math.round(ms * 1000) / 1000) prints', async (t) => {
  const samples = [0, 0.0004, 0.0005, 0.001, 0.01, 0.1, 0.12, 0.102, 0.012, 1, 1.2, 1.02, 1.002, 1.0004, 999.9995, 1073741.823, 1073741.824, 5e9, -0, -1.5, NaN, Infinity];
  for (let i = 0; i < 20000; i++) samples.push(i / 1000, Math.random() * 10 ** (Math.random() * 10));
  const differing = samples.filter((ms) => jsonMs(ms) !== String(Math.round(ms * 1000) / 1000));
  t.same(differing, [], `${samples.length} durations`);
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
  const writer = new TraceWriter(bus, 'full');
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
  const writer = new TraceWriter(bus, 'off');
  const statement = { seq: 1, sessionId: '7', transactionId: null, protocol: 'simple', text: 'SELECT secret', info: classifyStatement('SELECT 1'), statementName: null, request: { ...request, tags: null }, startedAt: 0, startMono: 0, durationMs: 0, txStatusBefore: 'I', txStatusAfter: 'I', commandTag: 'SELECT 1', rows: 1, dataRows: 1, error: null, savepointDepth: 0, lockWaitMs: 0, suspended: false, interrupted: false, copy: null } as StatementRecord;
  writer.statementFinished(session, statement);
  t.notOk('db.query.text' in sink.records[0]);
  t.equal(sink.records[0]['db.response.returned_rows'], 1);
  detach();
  writer.statementFinished(session, statement);
  t.equal(sink.records.length, 1);
});
