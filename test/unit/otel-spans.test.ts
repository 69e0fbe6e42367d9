import t from 'tap';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { wantsOpenMetrics } from '../../src/metrics/exposition.js';
import { BoundedBatchProcessor } from '../../src/otel/bounded-batch-processor.js';
import { parseTraceparent, SPAN_LIMITS, TransactionSpans, type TransactionSpansOptions } from '../../src/otel/transaction-spans.js';
import { classifyStatement as classify } from '../../src/sql/classify.js';
import { TraceText } from '../../src/trace/trace-text.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../../src/tracker/types.js';

const session: SessionInfo = { id: 'b-1', user: 'app', database: 'shop', applicationName: '', clientAddress: '127.0.0.1', startedAt: 0, backendPid: 42, replication: false };
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const PARENT = 'b7ad6b7169203331';
const EPOCH = 1_765_000_000_000;

function request(traceparent: string | null): RequestInfo {
  const tags = traceparent === null ? null : { traceparent };
  return { id: 'b-1.r1', traceId: traceparent === null ? null : TRACE, route: null, controller: null, action: null, application: null, framework: null, tags };
}

function transaction(req: RequestInfo, startMono: number, durationMs: number): TransactionRecord {
  return {
    id: `b-1.t${startMono}`, sessionId: 'b-1', startedAt: EPOCH, startMono, endedAt: EPOCH + durationMs, durationMs, outcome: 'commit', implicit: false,
    statements: 0, writes: 0, savepointsCreated: 0, savepointsReleased: 0, savepointsRolledBack: 0, maxSavepointDepth: 0,
    idleInTransactionMs: 0, lockWaitMs: 0, firstError: null, failed: false, request: req, statementLog: [],
  };
}

function statement(tx: TransactionRecord, seq: number, sql: string, startMono: number, durationMs: number, extra: Partial<StatementRecord> = {}): StatementRecord {
  const info = classify(sql);
  return {
    seq, sessionId: 'b-1', transactionId: tx.id, protocol: 'simple', text: sql, info, statementName: null, request: tx.request,
    startedAt: EPOCH, startMono, durationMs, txStatusBefore: 'T', txStatusAfter: 'T', commandTag: info.operation, rows: null, dataRows: 0,
    error: null, savepointDepth: 0, lockWaitMs: 0, suspended: false, interrupted: false, copy: null, ...extra,
  };
}

function setup(options: Partial<TransactionSpansOptions> = {}) {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanLimits: SPAN_LIMITS, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const spans = new TransactionSpans({
    tracer: provider.getTracer('txproxy'),
    server: { host: 'db', port: 5432 },
    text: new TraceText({ sql: 'redacted', maxSqlLength: 1000, maxTagLength: 100 }),
    statementSpans: 'all',
    slowStatementMs: 100,
    maxStatementSpans: 1000,
    untraced: 'off',
    untracedRatio: 0.01,
    ...options,
  });
  /** Runs a transaction through the listener: its statements at the given monotonic times. */
  const run = (tx: TransactionRecord, statements: readonly StatementRecord[]) => {
    spans.transactionStarted(session, tx);
    for (const s of statements) spans.statementFinished(session, s);
    spans.transactionEnded(session, tx);
  };
  const finished = () => exporter.getFinishedSpans();
  const ms = (hr: [number, number]) => hr[0] * 1000 + hr[1] / 1e6;
  return { spans, run, finished, ms };
}

t.test('span times are the transaction wall-clock start plus monotonic offsets, to the microsecond', async (t) => {
  const { run, finished, ms } = setup();
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 1000, 20.5);
  run(tx, [statement(tx, 1, 'BEGIN', 1000, 0.25), statement(tx, 2, "SELECT * FROM t WHERE name = 'x'", 1010.5, 2.25)]);
  const [begin, select, txSpan] = finished();
  t.equal(txSpan.name, 'transaction shop');
  t.equal(txSpan.parentSpanContext?.spanId, PARENT);
  t.equal(txSpan.spanContext().traceId, TRACE);
  t.equal(ms(txSpan.startTime), EPOCH);
  t.equal(ms(txSpan.endTime), EPOCH + 20.5);
  t.equal(begin.parentSpanContext?.spanId, txSpan.spanContext().spanId);
  t.equal(ms(select.startTime), EPOCH + 10.5);
  t.equal(ms(select.endTime), EPOCH + 12.75);
  t.equal(select.attributes['db.query.text'], 'SELECT * FROM t WHERE name = ?', 'SQL as the trace shows it (trace.sql: redacted)');
  t.same(select.attributes, {
    'db.system.name': 'postgresql',
    'db.namespace': 'shop',
    'server.address': 'db',
    'server.port': 5432,
    'db.operation.name': 'SELECT',
    'db.query.text': 'SELECT * FROM t WHERE name = ?',
    'txproxy.statement.seq': 2,
    'pg.command_tag': 'SELECT',
  }, 'a statement span: what tells it apart, values that are usually zero left out');
  t.match(txSpan.attributes, { 'db.system.name': 'postgresql', 'db.user': 'app', 'pg.backend_pid': 42, 'txproxy.session.id': 'b-1', 'txproxy.transaction.id': tx.id });
});

t.test("a statement span never ends after its transaction's: both ends are one addition to the wall-clock start", async (t) => {
  const { run, finished } = setup();
  const epochNow = 1_796_690_314_668;
  const nanos = (hr: [number, number]) => BigInt(hr[0]) * 1_000_000_000n + BigInt(hr[1]);
  // Monotonic times as the tracker reads them: COMMIT ends at the transaction's end.
  const [txStart, commitStart, end] = [1171.295, 1181.759, 1184.598];
  const tx = { ...transaction(request(`00-${TRACE}-${PARENT}-01`), txStart, end - txStart), startedAt: epochNow };
  // Its start plus its duration, each rounded at the wall clock's magnitude, landed 244 ns past the transaction's end.
  run(tx, [statement(tx, 1, 'COMMIT', commitStart, end - commitStart)]);
  const [commit, txSpan] = finished();
  t.equal(nanos(commit.endTime), nanos(txSpan.endTime), 'the COMMIT ends when its transaction does');
  t.ok(nanos(commit.startTime) < nanos(commit.endTime));
});

t.test('statement_spans: slow keeps slow, failed and lock-waiting statements; none keeps none', async (t) => {
  const { run, finished } = setup({ statementSpans: 'slow', slowStatementMs: 100 });
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 500);
  run(tx, [
    statement(tx, 1, 'SELECT 1', 0, 5),
    statement(tx, 2, 'SELECT pg_sleep(0.2)', 10, 200),
    statement(tx, 3, 'SELECT 1/0', 220, 1, { error: { severity: 'ERROR', code: '22012', message: 'division by zero' } }),
    statement(tx, 4, 'UPDATE t SET a = 1', 230, 50, { lockWaitMs: 40 }),
  ]);
  t.same(finished().map((s) => s.attributes['txproxy.statement.seq'] ?? s.name), [2, 3, 4, 'transaction shop']);

  const none = setup({ statementSpans: 'none' });
  const tx2 = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 10);
  none.run(tx2, [statement(tx2, 1, 'SELECT 1', 0, 500)]);
  t.same(none.finished().map((s) => s.name), ['transaction shop']);
});

t.test('max_statement_spans: the rest are counted on the transaction span', async (t) => {
  const { run, finished } = setup({ maxStatementSpans: 2 });
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 10);
  run(tx, [1, 2, 3, 4, 5].map((i) => statement(tx, i, 'SELECT 1', i, 1)));
  const spans = finished();
  t.equal(spans.length, 3);
  t.equal(spans[2].attributes['txproxy.statement_spans_dropped'], 3);
});

t.test('the first traceparent of a transaction names its parent, even after an untagged BEGIN', async (t) => {
  const { run, finished } = setup();
  const untagged = request(null);
  const tx = transaction(untagged, 0, 10);
  const tagged = request(`00-${TRACE}-${PARENT}-01`);
  run(tx, [statement(tx, 1, 'BEGIN', 0, 1), statement(tx, 2, 'SELECT 1', 2, 1, { request: tagged }), statement(tx, 3, 'COMMIT', 4, 1)]);
  const txSpan = finished().at(-1)!;
  t.equal(txSpan.parentSpanContext?.spanId, PARENT);
  t.equal(finished().length, 4, 'the BEGIN before the tags has its span too');
});

t.test('untraced transactions: off, sampled by ratio, or root', async (t) => {
  const untraced = () => {
    const tx = transaction(request(null), 0, 1);
    return [tx, [statement(tx, 1, 'SELECT 1', 0, 1)]] as const;
  };
  const off = setup();
  off.run(...untraced());
  t.same(off.finished(), []);

  let draw = 0.5;
  const sampled = setup({ untraced: 'sampled', untracedRatio: 0.1, random: () => draw });
  sampled.run(...untraced());
  t.same(sampled.finished(), [], 'a draw above the ratio: no span');
  draw = 0.05;
  sampled.run(...untraced());
  t.equal(sampled.finished().length, 2, 'below it: spans');
  t.equal(sampled.finished()[1].parentSpanContext, undefined, 'a root span');

  const root = setup({ untraced: 'root' });
  root.run(...untraced());
  t.equal(root.finished().length, 2);
});

t.test("a client's unsampled traceparent makes no span", async (t) => {
  const { run, finished } = setup({ untraced: 'root' });
  const tx = transaction(request(`00-${TRACE}-${PARENT}-00`), 0, 1);
  run(tx, [statement(tx, 1, 'SELECT 1', 0, 1)]);
  t.same(finished(), []);
});

t.test('events from records land on the transaction they name, or the session\'s next one', async (t) => {
  const { spans, finished } = setup();
  spans.eventForSession('b-1', { name: 'txproxy.policy', time: EPOCH + 1, attributes: { 'txproxy.policy.rule': 'r' } });
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 10);
  spans.transactionStarted(session, tx);
  t.equal(spans.eventForTransaction(tx.id, { name: 'txproxy.lock_wait', time: EPOCH + 2, attributes: {} }), true);
  t.equal(spans.eventForTransaction('b-9.t1', { name: 'txproxy.lock_wait', time: EPOCH + 2, attributes: {} }), false);
  spans.transactionEnded(session, tx);
  t.same(finished().at(-1)!.events.map((e) => e.name), ['txproxy.policy', 'txproxy.lock_wait']);
});

t.test('traceparent parsing', async (t) => {
  t.same(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, spanId: PARENT, traceFlags: 1, isRemote: true });
  t.equal(parseTraceparent(`00-${TRACE}-${PARENT}-00`)?.traceFlags, 0);
  t.equal(parseTraceparent(undefined), null);
  t.equal(parseTraceparent(`00-${'0'.repeat(32)}-${PARENT}-01`), null, 'all-zero trace id');
  t.equal(parseTraceparent(`00-${TRACE}-${'0'.repeat(16)}-01`), null, 'all-zero span id');
  t.equal(parseTraceparent(`ff-${TRACE}-${PARENT}-01`), null, 'version ff');
  t.equal(parseTraceparent(`00-${TRACE.toUpperCase()}-${PARENT}-01`), null, 'upper case');
});

/** An exporter that answers only when told to. */
class HeldExporter implements SpanExporter {
  calls: { spans: ReadableSpan[]; done: (r: ExportResult) => void }[] = [];
  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    this.calls.push({ spans, done });
  }
  async shutdown(): Promise<void> {}
}

t.test('the batch queue: bounded, one export in flight, drops counted', async (t) => {
  const exporter = new HeldExporter();
  const counts = { queue_full: 0, export_failed: 0, exported: 0 };
  const processor = new BoundedBatchProcessor(exporter, { maxQueueSize: 4, maxExportBatchSize: 2, scheduleDelayMs: 60_000, exportTimeoutMs: 60_000 }, {
    dropped: (reason, n) => (counts[reason] += n),
    exported: (n) => (counts.exported += n),
  });
  const span = {} as ReadableSpan;
  for (let i = 0; i < 10; i++) processor.onEnd(span);
  t.equal(exporter.calls.length, 1, 'one export started, with the first full batch');
  t.equal(exporter.calls[0].spans.length, 2);
  t.equal(processor.queued, 4, 'the queue holds its maximum');
  t.equal(counts.queue_full, 4, 'the rest dropped and counted');
  exporter.calls[0].done({ code: ExportResultCode.SUCCESS });
  await new Promise((r) => setImmediate(r));
  t.equal(exporter.calls.length, 2, 'the next batch goes when the first is answered');
  exporter.calls[1].done({ code: ExportResultCode.FAILED });
  await new Promise((r) => setImmediate(r));
  t.same(counts, { queue_full: 4, export_failed: 2, exported: 2 });
  exporter.calls[2].done({ code: ExportResultCode.SUCCESS });
  await processor.shutdown(1000);
  t.same(counts, { queue_full: 4, export_failed: 2, exported: 4 });
  processor.onEnd(span);
  t.equal(processor.queued, 0, 'nothing is queued after shutdown');
});

t.test('OpenMetrics only when the Accept header asks for it', async (t) => {
  t.equal(wantsOpenMetrics(undefined), false);
  t.equal(wantsOpenMetrics('text/plain'), false);
  t.equal(wantsOpenMetrics('application/openmetrics-text; version=1.0.0; charset=utf-8'), true);
  t.equal(wantsOpenMetrics('application/openmetrics-text;version=1.0.0;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'), true, "Prometheus' own header");
  t.equal(wantsOpenMetrics('application/openmetrics-text;q=0, text/plain'), false);
});

t.test('a transaction span keeps 256 events and counts the rest', async (t) => {
  const { spans, finished } = setup();
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 10);
  spans.transactionStarted(session, tx);
  for (let i = 0; i < 300; i++) spans.savepoint(session, 'create', `s${i}`, i + 1, tx);
  spans.transactionEnded(session, tx);
  const span = finished().at(-1)!;
  t.equal(span.events.length, 256);
  t.equal(span.attributes['txproxy.events_dropped'], 44);
});

t.test('a span that cannot be built never throws into the session: the error is reported', async (t) => {
  const errors: string[] = [];
  const failing = {
    startSpan() {
      throw new Error('exporter state broken');
    },
  } as unknown as TransactionSpansOptions['tracer'];
  const { spans } = setup({ tracer: failing, onError: (err) => errors.push(err.message) });
  const tx = transaction(request(`00-${TRACE}-${PARENT}-01`), 0, 1);
  spans.transactionStarted(session, tx);
  t.doesNotThrow(() => spans.transactionEnded(session, tx));
  t.same(errors, ['exporter state broken']);
});
