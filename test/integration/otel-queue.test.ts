/**
 * The span export queue when the receiver cannot keep up: a receiver that
 * never answers, and one that refuses. Spans beyond the queue are dropped
 * and counted, the queue never grows past its bound, at most one export is
 * in flight, and clients' statements never wait for any of it.
 */
import t from 'tap';
import { metricValue } from '../helpers/metrics.js';
import { startOtlpReceiver } from '../helpers/otlp-receiver.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
t.teardown(() => postgres.stop());

const STATEMENTS = 200;

t.test('a receiver that never answers: spans past the queue are dropped and counted; statements go on', async (t) => {
  const receiver = await startOtlpReceiver('hang');
  const proxy = await startProxy(postgres, {
    otel: {
      endpoint: receiver.url,
      protocol: 'http/json',
      // Every transaction gets spans (two per autocommit statement), so the queue fills fast.
      untraced: 'root',
      max_queue_size: 20,
      max_export_batch_size: 5,
      schedule_delay: 10,
      export_timeout: 120_000,
      timeout: 120_000,
    },
  });
  t.teardown(async () => {
    await receiver.close();
    await proxy.stop();
  });
  const client = await proxy.client();
  t.teardown(() => client.end());
  const started = performance.now();
  for (let i = 0; i < STATEMENTS; i++) await client.query('SELECT $1::int AS i', [i]);
  const elapsed = performance.now() - started;
  await proxy.waitForTransactions(STATEMENTS);

  const registry = proxy.app.registry;
  const spans = STATEMENTS * 2;
  const dropped = await metricValue(registry, 'txproxy_otel_spans_dropped_total', { reason: 'queue_full' });
  const queued = await metricValue(registry, 'txproxy_otel_queued_spans');
  t.equal(receiver.requests, 1, 'one export in flight, never more, while the receiver holds it');
  t.equal(queued, 20, 'the queue is full, and no fuller');
  const inFlight = spans - dropped - queued;
  t.ok(inFlight >= 1 && inFlight <= 5, `the rest (${inFlight}) is the one batch in flight`);
  t.equal(await metricValue(registry, 'txproxy_otel_spans_exported_total'), 0);
  // Generous: 200 round trips on a loaded machine. A statement that waited for the receiver would wait forever.
  t.ok(elapsed < 60_000, `the statements ran without waiting for the receiver (${Math.round(elapsed)} ms)`);
});

t.test('a receiver that refuses: failed batches are counted and the queue drains; once it accepts, spans arrive', async (t) => {
  const receiver = await startOtlpReceiver('refuse');
  const proxy = await startProxy(postgres, {
    otel: {
      endpoint: receiver.url,
      protocol: 'http/json',
      untraced: 'root',
      statement_spans: 'none',
      max_queue_size: 100,
      max_export_batch_size: 10,
      schedule_delay: 10,
      export_timeout: 5_000,
      // The exporter retries a 503 until this runs out.
      timeout: 300,
    },
  });
  t.teardown(async () => {
    await receiver.close();
    await proxy.stop();
  });
  const client = await proxy.client();
  t.teardown(() => client.end());
  for (let i = 0; i < 20; i++) await client.query('SELECT 1');
  const registry = proxy.app.registry;
  await eventually(async () => (await metricValue(registry, 'txproxy_otel_spans_dropped_total', { reason: 'export_failed' })) === 20, 20_000, 'the refused spans to be counted');
  t.equal(await metricValue(registry, 'txproxy_otel_queued_spans'), 0, 'nothing left queued');
  t.equal(await metricValue(registry, 'txproxy_otel_spans_dropped_total', { reason: 'queue_full' }), 0);

  receiver.mode = 'accept';
  await client.query('SELECT 2 AS after');
  await eventually(() => receiver.spans.length === 1, 20_000, 'the span after the receiver came back');
  t.equal(receiver.spans[0].name, 'transaction postgres');
  t.equal(receiver.spans[0].parentSpanId, '', 'an untraced transaction is a root span with untraced: root');
  // The receiver holds the span before its answer reaches the exporter, which counts the span then.
  await eventually(async () => (await metricValue(registry, 'txproxy_otel_spans_exported_total')) === 1, 20_000, 'the span counted as exported');
  t.equal(await metricValue(registry, 'txproxy_otel_spans_exported_total'), 1);
});

t.test('without an endpoint nothing of the export exists: no listener, no queue, no metrics', async (t) => {
  const proxy = await startProxy(postgres, { http: '127.0.0.1:0' });
  t.teardown(() => proxy.stop());
  t.equal(proxy.app.otel, null);
  const client = await proxy.client();
  await client.query('SELECT 1');
  await client.end();
  t.equal(proxy.app.registry.getSingleMetric('txproxy_otel_spans_dropped_total'), undefined);
  const text = await (await fetch(`http://127.0.0.1:${proxy.app.adminPort}/metrics`, { headers: { Accept: 'application/openmetrics-text' } })).text();
  t.notMatch(text, /trace_id=/, 'and no exemplars');
});
