/**
 * What `/events` subscribers may cost: a fixed number of places
 * (admin.max_event_subscribers), bounded memory for one that does not read,
 * and a disconnect once it has stayed behind too long. Regression tests for
 * a flood of subscribers that never read, which held hundreds of MB and cut
 * the proxy's throughput to a third.
 */
import http from 'node:http';
import net from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { EventStream } from '../../src/admin/event-stream.js';
import { TraceBus } from '../../src/trace/trace-sink.js';
import { request, Scrape, subscribe, type EventSubscription } from '../helpers/admin.js';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const postgres = await startPostgres();
t.teardown(() => postgres.stop());

t.test('/events refuses the subscriber past admin.max_event_subscribers with 503; closing one frees a place', async (t) => {
  const proxy = await startProxy(postgres, { http: '127.0.0.1:0', admin: { max_event_subscribers: 3 } });
  t.teardown(() => proxy.stop());
  const port = proxy.app.adminPort!;
  const open: EventSubscription[] = [];
  t.teardown(() => open.forEach((s) => s.close()));
  for (let i = 0; i < 3; i++) open.push(await subscribe(port));
  t.same(open.map((s) => s.status), [200, 200, 200]);

  const refused = await request(port, '/events');
  t.equal(refused.status, 503, 'the fourth is refused');
  t.match(refused.headers['content-type'], /^application\/json/);
  t.ok(Number(refused.headers['retry-after']) > 0, 'with Retry-After');
  t.match(JSON.parse(refused.body), {
    error: 'too many subscribers',
    message: '/events already has 3 subscribers, the most admin.max_event_subscribers allows; close one or raise the limit',
  });
  const scrape = await Scrape.of(port);
  t.equal(scrape.value('txproxy_admin_event_subscribers'), 3);
  t.equal(scrape.value('txproxy_admin_event_subscribers_refused_total'), 1);

  // The refused one took no place: the three still get records.
  proxy.app.traceBus.write({ kind: 'test', n: 1 });
  for (const s of open) await s.waitFor((r) => r.kind === 'test' && r.n === 1, 10_000, 'the record on every subscriber');

  open.shift()!.close();
  await eventually(async () => (await Scrape.of(port)).value('txproxy_admin_event_subscribers') === 2, 10_000, 'the closed subscriber to detach');
  const next = await subscribe(port);
  open.push(next);
  t.equal(next.status, 200, 'a place is free again');
  proxy.app.traceBus.write({ kind: 'test', n: 2 });
  await next.waitFor((r) => r.kind === 'test' && r.n === 2, 10_000, 'a record on the new subscriber');
});

/** An EventStream on its own HTTP server, with its bounds small enough to reach in a test. */
async function streamServer(t: { teardown(fn: () => void): void }, options: { maxSubscribers: number; maxBufferedBytes: number; stallTimeoutMs: number; keepaliveMs: number }) {
  const bus = new TraceBus();
  const registry = new Registry();
  const stream = new EventStream({ bus, registry, ...options });
  const responses: http.ServerResponse[] = [];
  const server = http.createServer((req, res) => {
    responses.push(res);
    stream.subscribe(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    stream.closeAll();
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const metric = async (name: string) => Scrape.parse(await registry.metrics()).value(name) ?? 0;
  return { bus, stream, responses, port, metric };
}

/** A client that sends the request and then never reads a byte. */
async function neverReads(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  socket.on('error', () => undefined);
  socket.pause();
  socket.write('GET /events HTTP/1.1\r\nHost: txproxy\r\n\r\n');
  return socket;
}

t.test('a subscriber that never reads holds bounded memory and is disconnected once it stays behind', async (t) => {
  const maxBufferedBytes = 64 * 1024;
  const { bus, stream, responses, port, metric } = await streamServer(t, { maxSubscribers: 1, maxBufferedBytes, stallTimeoutMs: 300, keepaliveMs: 50 });
  const socket = await neverReads(port);
  t.teardown(() => socket.destroy());
  await eventually(() => stream.size === 1, 10_000, 'the subscriber to be accepted');

  // Records of 16 KiB until the socket buffers are full: what is unsent stays
  // unsent even after the event loop had time to pass it to the kernel
  // (at most 256 MiB, far more than any loopback socket buffers).
  const [res] = responses;
  const record = { kind: 'test', pad: 'x'.repeat(16 * 1024) };
  const line = JSON.stringify(record).length + 8;
  let sent = 0;
  while (sent < 16_384) {
    for (let i = 0; i < 64; i++) bus.write(record);
    sent += 64;
    await new Promise((resolve) => setTimeout(resolve, 20));
    if (res.writableLength > maxBufferedBytes) break;
  }
  t.ok(res.writableLength > maxBufferedBytes, `the client's buffers are full after ${sent} records`);
  t.ok((await metric('txproxy_admin_events_dropped_total')) > 0, 'records are dropped');
  t.ok(res.writableLength <= maxBufferedBytes + line, `unsent output ${res.writableLength} bytes stays within the bound (${maxBufferedBytes} + one record)`);
  for (let i = 0; i < 1000; i++) bus.write(record);
  t.ok(res.writableLength <= maxBufferedBytes + line, `and stays there as records go on (${res.writableLength} bytes)`);

  // No more records: the keepalive check alone ends the stalled stream.
  await eventually(() => stream.size === 0, 10_000, 'the stalled subscriber to be disconnected');
  t.equal(await metric('txproxy_admin_event_subscribers_stalled_total'), 1);
  t.ok(res.destroyed, 'its response is destroyed, its buffers freed');

  // Its place is free for a subscriber that reads.
  const reader = await subscribe(port);
  t.teardown(() => reader.close());
  t.equal(reader.status, 200);
  bus.write({ kind: 'test', after: true });
  await reader.waitFor((r) => r.after === true, 10_000, 'a record on the new subscriber');
});

t.test('a subscriber that falls behind but catches up in time stays connected', async (t) => {
  const { bus, stream, port, metric } = await streamServer(t, { maxSubscribers: 1, maxBufferedBytes: 64 * 1024, stallTimeoutMs: 60_000, keepaliveMs: 50 });
  const events = await subscribe(port);
  t.teardown(() => events.close());
  events.pause();
  const record = { kind: 'test', pad: 'x'.repeat(16 * 1024) };
  let sent = 0;
  while ((await metric('txproxy_admin_events_dropped_total')) === 0 && sent < 16_384) {
    for (let i = 0; i < 64; i++) bus.write(record);
    sent += 64;
  }
  events.resume();
  // Records that come while it is behind are dropped; the first one after it caught up is sent.
  let probes = 0;
  await eventually(
    () => {
      bus.write({ kind: 'test', probe: ++probes });
      return events.records.some((r) => r.probe !== undefined);
    },
    10_000,
    'a record after catching up',
  );
  t.equal(stream.size, 1, 'still subscribed');
  t.equal(await metric('txproxy_admin_event_subscribers_stalled_total'), 0);
  t.ok(events.comments.some((c) => c.startsWith('dropped ')), 'told how many records it missed');
});

t.test('records of one turn of the event loop reach a subscriber in one write', async (t) => {
  const { bus, responses, port } = await streamServer(t, { maxSubscribers: 2, maxBufferedBytes: 1024 * 1024, stallTimeoutMs: 60_000, keepaliveMs: 60_000 });
  const events = await subscribe(port);
  t.teardown(() => events.close());
  const [res] = responses;
  let writes = 0;
  const write = res.write.bind(res) as (chunk: string) => boolean;
  res.write = ((chunk: string) => {
    writes++;
    return write(chunk);
  }) as typeof res.write;
  for (let i = 0; i < 500; i++) bus.write({ kind: 'statement', i });
  await events.waitFor((r) => r.i === 499, 10_000, 'the last record');
  t.same(events.records.map((r) => r.i), [...Array(500).keys()], 'every record, in order');
  t.equal(writes, 1, '500 records, one write');
});
