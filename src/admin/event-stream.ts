/**
 * `GET /events`: the live trace as server-sent events. Each subscriber is a
 * sink on the App's TraceBus for as long as its connection lasts; each
 * record goes out as `data: <JSON>\n\n`, with a `: keepalive` comment every
 * 15 s so proxies and clients keep an idle stream open.
 *
 * Subscribers cost the proxy, so they are bounded three ways:
 * - at most `maxSubscribers` at once; the next one gets 503;
 * - a subscriber that reads slower than records arrive never holds the
 *   proxy back: once its unsent output passes `maxBufferedBytes`, records
 *   for it are dropped (counted, and announced in a `: dropped N` comment
 *   when it catches up), so it holds at most that much memory;
 * - one that stays behind for `stallTimeoutMs` is disconnected, so a
 *   client that never reads cannot keep its place (and its memory) forever.
 *
 * Records are collected per subscriber and written once per turn of the
 * event loop: a busy proxy makes tens of thousands of records a second,
 * and one write (one system call) each, times every subscriber, would cost
 * it more than the statements themselves.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { TraceBus } from '../trace/trace-sink.js';
import { json } from './json-answer.js';

export const KEEPALIVE_MS = 15_000;
/** Unsent bytes a subscriber may have queued before its records are dropped. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;
/** How long a subscriber may stay past MAX_BUFFERED_BYTES before it is disconnected. */
export const STALL_TIMEOUT_MS = 30_000;
export const MAX_SUBSCRIBERS = 16;

export interface EventStreamOptions {
  bus: TraceBus;
  /** Where the stream's own metrics go (txproxy_admin_event*). */
  registry: Registry;
  maxSubscribers?: number;
  maxBufferedBytes?: number;
  keepaliveMs?: number;
  stallTimeoutMs?: number;
  log?: Logger;
}

interface Subscriber {
  res: http.ServerResponse;
  /** Events not yet written to `res`; written together at the next flush. */
  pending: string[];
  /** Their length in UTF-16 code units: bytes for the ASCII of JSON records, close enough for a bound. */
  pendingBytes: number;
  dropped: number;
  /** When it last fell past the buffer bound (performance.now()); null while it keeps up. */
  behindSince: number | null;
}

export class EventStream {
  private readonly subscribers = new Set<Subscriber>();
  /** Subscribers with pending events, written by one setImmediate. */
  private readonly toFlush = new Set<Subscriber>();
  private flushScheduled = false;
  private readonly bus: TraceBus;
  private readonly maxSubscribers: number;
  private readonly maxBufferedBytes: number;
  private readonly keepaliveMs: number;
  private readonly stallTimeoutMs: number;
  private readonly log: Logger | undefined;
  private readonly droppedRecords: Counter;
  private readonly refused: Counter;
  private readonly stalled: Counter;

  constructor(options: EventStreamOptions) {
    this.bus = options.bus;
    this.maxSubscribers = options.maxSubscribers ?? MAX_SUBSCRIBERS;
    this.maxBufferedBytes = options.maxBufferedBytes ?? MAX_BUFFERED_BYTES;
    this.keepaliveMs = options.keepaliveMs ?? KEEPALIVE_MS;
    this.stallTimeoutMs = options.stallTimeoutMs ?? STALL_TIMEOUT_MS;
    this.log = options.log;
    const registers = [options.registry];
    this.droppedRecords = new Counter({
      name: 'txproxy_admin_events_dropped_total',
      help: 'Trace records not sent to a /events subscriber because it read too slowly.',
      registers,
    });
    this.refused = new Counter({
      name: 'txproxy_admin_event_subscribers_refused_total',
      help: 'Requests for /events refused with 503 because admin.max_event_subscribers were connected.',
      registers,
    });
    this.stalled = new Counter({
      name: 'txproxy_admin_event_subscribers_stalled_total',
      help: '/events subscribers disconnected because they stopped reading.',
      registers,
    });
    const subscribers = this.subscribers;
    new Gauge({
      name: 'txproxy_admin_event_subscribers',
      help: 'Clients connected to /events now.',
      registers,
      collect() {
        this.set(subscribers.size);
      },
    });
  }

  get size(): number {
    return this.subscribers.size;
  }

  subscribe(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.subscribers.size >= this.maxSubscribers) {
      this.refused.inc();
      json(
        res,
        503,
        {
          error: 'too many subscribers',
          message: `/events already has ${this.subscribers.size} subscribers, the most admin.max_event_subscribers allows; close one or raise the limit`,
        },
        { 'Retry-After': '10' },
      );
      return;
    }
    const subscriber: Subscriber = { res, pending: [], pendingBytes: 0, dropped: 0, behindSince: null };
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      // nginx would otherwise buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    const detach = this.bus.attach({ writeLine: (line) => this.send(subscriber, line), flush: async () => undefined });
    this.subscribers.add(subscriber);
    const keepalive = setInterval(() => this.keepalive(subscriber), this.keepaliveMs);
    keepalive.unref();
    const close = () => {
      if (!this.subscribers.delete(subscriber)) return;
      this.toFlush.delete(subscriber);
      subscriber.pending = [];
      clearInterval(keepalive);
      detach();
    };
    req.once('close', close);
    res.once('close', close);
    res.once('error', close);
    // Headers now: the subscription is live once the client sees them.
    res.flushHeaders();
  }

  /** Ends every stream (at shutdown), after the events still pending. */
  closeAll(): void {
    this.flush();
    for (const subscriber of this.subscribers) subscriber.res.end();
  }

  private send(subscriber: Subscriber, line: string): void {
    const res = subscriber.res;
    if (res.writableEnded || res.destroyed) return;
    if (this.isBehind(subscriber)) {
      subscriber.dropped++;
      this.droppedRecords.inc();
      return;
    }
    if (subscriber.dropped > 0) {
      this.queue(subscriber, `: dropped ${subscriber.dropped}\n\n`);
      subscriber.dropped = 0;
    }
    this.queue(subscriber, `data: ${line}\n\n`);
  }

  private queue(subscriber: Subscriber, event: string): void {
    subscriber.pending.push(event);
    subscriber.pendingBytes += event.length;
    this.toFlush.add(subscriber);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const subscriber of this.toFlush) {
      const res = subscriber.res;
      if (!res.writableEnded && !res.destroyed) res.write(subscriber.pending.join(''));
      subscriber.pending = [];
      subscriber.pendingBytes = 0;
    }
    this.toFlush.clear();
  }

  /** A keepalive for a stream that is quiet; the check that ends a stalled one when no records come. */
  private keepalive(subscriber: Subscriber): void {
    if (this.isBehind(subscriber)) return;
    // Something still waits to be sent: the stream is not idle.
    if (subscriber.res.writableLength === 0 && subscriber.pendingBytes === 0) subscriber.res.write(': keepalive\n\n');
  }

  /**
   * True while the subscriber's unsent output (pending or in the socket's
   * buffer) is past the bound; it is disconnected once that has lasted
   * stallTimeoutMs.
   */
  private isBehind(subscriber: Subscriber): boolean {
    const res = subscriber.res;
    if (res.writableLength + subscriber.pendingBytes <= this.maxBufferedBytes) {
      subscriber.behindSince = null;
      return false;
    }
    const now = performance.now();
    subscriber.behindSince ??= now;
    if (now - subscriber.behindSince >= this.stallTimeoutMs && !res.destroyed) {
      this.stalled.inc();
      this.log?.warn(
        { unsentBytes: res.writableLength, dropped: subscriber.dropped, behindMs: Math.round(now - subscriber.behindSince) },
        'event subscriber disconnected: it stopped reading',
      );
      res.destroy();
    }
    return true;
  }
}
