/**
 * `GET /events`: the live trace as server-sent events. Each subscriber is a
 * sink on the App's TraceBus for as long as its connection lasts; each
 * record goes out as `data: <JSON>\n\n`, with a `: keepalive` comment every
 * 15 s so proxies and clients keep an idle stream open.
 *
 * A subscriber that reads slower than records arrive never holds the proxy
 * back: once its unsent output passes a bound, records for it are dropped
 * (counted, and announced in a `: dropped N` comment when it catches up).
 */
import type http from 'node:http';
import type { Counter } from 'prom-client';
import type { TraceBus } from '../trace/trace-sink.js';

export const KEEPALIVE_MS = 15_000;
/** Unsent bytes a subscriber may have queued before its records are dropped. */
export const MAX_BUFFERED_BYTES = 1024 * 1024;

interface Subscriber {
  res: http.ServerResponse;
  dropped: number;
}

export class EventStream {
  private readonly subscribers = new Set<Subscriber>();

  constructor(
    private readonly bus: TraceBus,
    private readonly droppedCounter: Counter,
    private readonly maxBufferedBytes = MAX_BUFFERED_BYTES,
    private readonly keepaliveMs = KEEPALIVE_MS,
  ) {}

  get size(): number {
    return this.subscribers.size;
  }

  subscribe(req: http.IncomingMessage, res: http.ServerResponse): void {
    const subscriber: Subscriber = { res, dropped: 0 };
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      Connection: 'keep-alive',
      // nginx would otherwise buffer the stream.
      'X-Accel-Buffering': 'no',
    });
    const detach = this.bus.attach({ writeLine: (line) => this.send(subscriber, line), flush: async () => undefined });
    this.subscribers.add(subscriber);
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), this.keepaliveMs);
    keepalive.unref();
    const close = () => {
      if (!this.subscribers.delete(subscriber)) return;
      clearInterval(keepalive);
      detach();
    };
    req.once('close', close);
    res.once('close', close);
    res.once('error', close);
    // Headers now: the subscription is live once the client sees them.
    res.flushHeaders();
  }

  /** Ends every stream (at shutdown). */
  closeAll(): void {
    for (const subscriber of this.subscribers) subscriber.res.end();
  }

  private send(subscriber: Subscriber, line: string): void {
    const res = subscriber.res;
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > this.maxBufferedBytes) {
      subscriber.dropped++;
      this.droppedCounter.inc();
      return;
    }
    if (subscriber.dropped > 0) {
      res.write(`: dropped ${subscriber.dropped}\n\n`);
      subscriber.dropped = 0;
    }
    res.write(`data: ${line}\n\n`);
  }
}
