/**
 * A span processor with a bounded queue: finished spans wait here and go to
 * the exporter in batches, one export at a time. When the queue is full a
 * new span is dropped and counted, never queued: a receiver that is down or
 * slow costs the proxy at most `maxQueueSize` spans of memory, and nothing
 * on the path of a statement ever waits for it.
 *
 * The SDK's own BatchSpanProcessor behaves the same way but keeps its drop
 * count to itself; txproxy counts drops in
 * `txproxy_otel_spans_dropped_total` so an operator can see them.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface BatchOptions {
  maxQueueSize: number;
  maxExportBatchSize: number;
  /** Longest time a span waits for a batch to fill, ms. */
  scheduleDelayMs: number;
  /** How long one export may take before it counts as failed, ms. */
  exportTimeoutMs: number;
}

export interface BatchCounters {
  /** Spans dropped: `queue_full`, or `export_failed` (the receiver refused them or timed out). */
  dropped(reason: 'queue_full' | 'export_failed', spans: number): void;
  exported(spans: number): void;
}

/** How long shutdown waits for the receiver, ms. */
export const SHUTDOWN_TIMEOUT_MS = 5000;

export class BoundedBatchProcessor implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private timer: NodeJS.Timeout | null = null;
  private exporting: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly options: BatchOptions,
    private readonly counters: BatchCounters,
  ) {}

  /** Spans waiting now. */
  get queued(): number {
    return this.queue.length;
  }

  onStart(_span: Span, _parentContext: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.stopped) return;
    if (this.queue.length >= this.options.maxQueueSize) {
      this.counters.dropped('queue_full', 1);
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= this.options.maxExportBatchSize) this.exportSoon();
    else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.exportSoon();
      }, this.options.scheduleDelayMs);
      // Queued spans never keep the process alive: shutdown() sends them.
      this.timer.unref();
    }
  }

  /** Sends everything queued; resolves when the exporter has answered for it. */
  async forceFlush(): Promise<void> {
    while (this.exporting !== null || this.queue.length > 0) {
      if (this.exporting !== null) await this.exporting;
      else this.exportSoon();
    }
  }

  /**
   * Sends what is queued and stops, waiting at most `timeoutMs` for the
   * receiver: a receiver that is down must not hold up txproxy's exit.
   * Spans still queued then are counted as dropped.
   */
  async shutdown(timeoutMs = SHUTDOWN_TIMEOUT_MS): Promise<void> {
    if (this.stopped) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.forceFlush(), deadline]);
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.queue.length > 0) this.counters.dropped('export_failed', this.queue.length);
    this.queue = [];
    await Promise.race([this.exporter.shutdown(), deadline]);
    clearTimeout(timer);
  }

  /** Starts an export unless one is in flight; that one starts the next when it ends. */
  private exportSoon(): void {
    if (this.exporting !== null || this.queue.length === 0) return;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.queue.length <= this.options.maxExportBatchSize ? this.queue : this.queue.slice(0, this.options.maxExportBatchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    this.exporting = this.send(batch).then(() => {
      this.exporting = null;
      if (this.queue.length >= this.options.maxExportBatchSize) this.exportSoon();
      else if (this.queue.length > 0 && this.timer === null && !this.stopped) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.exportSoon();
        }, this.options.scheduleDelayMs);
        this.timer.unref();
      }
    });
  }

  private send(batch: ReadableSpan[]): Promise<void> {
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = (result: ExportResult | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timeout);
        if (result !== null && result.code === ExportResultCode.SUCCESS) this.counters.exported(batch.length);
        else this.counters.dropped('export_failed', batch.length);
        resolve();
      };
      const timeout = setTimeout(() => done(null), this.options.exportTimeoutMs);
      timeout.unref();
      try {
        this.exporter.export(batch, done);
      } catch {
        done(null);
      }
    });
  }
}
