/**
 * Turns the tracker's records into OpenTelemetry spans: one span per
 * database transaction, a child of the span named by its statements'
 * sqlcommenter `traceparent`, with a child span per statement and span
 * events for savepoints, lock waits, deadlocks and policy decisions.
 *
 * Spans are made when the transaction ends, from the records the tracker
 * already made, with their real start and end times: only then is it known
 * whether the transaction is traced at all (a driver's BEGIN carries no
 * tags; the first tagged statement names the parent), whether the client
 * sampled it, and how it ended. Until then a transaction costs a small
 * object, and each statement an array push.
 *
 * Times: the tracker stamps a transaction's start on the wall clock (epoch
 * ms) and every start on the monotonic clock. A span's times are the
 * transaction's wall-clock start plus monotonic offsets, so they are exact
 * relative to each other and never jump with the wall clock.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, type Attributes, type Span, type SpanContext, type Tracer } from '@opentelemetry/api';
import type { TraceText } from '../trace/trace-text.js';
import { SessionSlot } from '../tracker/session-slot.js';
import type { RequestInfo, SavepointOp, SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../tracker/types.js';
import type { StatementSpans, Untraced } from './otel-config.js';
import { statementAttributes, statementSpanName, transactionAttributes, transactionSpanName, type ServerAddress } from './span-attributes.js';

/** A span event waiting for its transaction's span. */
export interface PendingEvent {
  name: string;
  /** Epoch ms. */
  time: number;
  attributes: Attributes;
}

/** Where a transaction's trace ids go once its spans exist (Prometheus exemplars). */
export interface ExemplarSink {
  transactionTraced(session: SessionInfo, tx: TransactionRecord, traceId: string, spanId: string): void;
  statementTraced(session: SessionInfo, statement: StatementRecord, traceId: string, spanId: string): void;
}

export interface TransactionSpansOptions {
  tracer: Tracer;
  server: ServerAddress;
  text: TraceText;
  statementSpans: StatementSpans;
  slowStatementMs: number;
  maxStatementSpans: number;
  untraced: Untraced;
  untracedRatio: number;
  exemplars?: ExemplarSink;
  /** A span could not be built; the transaction is left out, the session goes on. */
  onError?: (err: Error) => void;
  /** Defaults to Math.random; tests pass their own. */
  random?: () => number;
}

/**
 * A session's transaction in progress, as far as spans need it. One object
 * per session serves each of its transactions in turn: nearly none becomes
 * a span, and this runs for every one.
 */
interface OpenTransaction {
  session: SessionInfo;
  /** Null between transactions. */
  tx: TransactionRecord | null;
  /** Statements that may become spans (all, or per `statement_spans`), at most maxStatementSpans. */
  statements: StatementRecord[];
  /** Statements left out by maxStatementSpans. */
  statementsOver: number;
  /** The request of the first statement that named a parent span. */
  request: RequestInfo | null;
  parent: SpanContext | null;
  events: PendingEvent[];
  /** Events left out by MAX_EVENTS. */
  eventsOver: number;
}

/** What a transaction that kept no statement or event holds: shared, never written to. */
const NONE: never[] = [];

/** Events kept for one transaction; more are counted, not kept (a loop of savepoints must not grow memory). */
const MAX_EVENTS = 256;

/** The tracer provider's limits for these spans: room for every event kept. */
export const SPAN_LIMITS = { attributeCountLimit: 128, eventCountLimit: MAX_EVENTS, attributePerEventCountLimit: 32 };

export class TransactionSpans implements TrackerListener {
  /** Each session's open transaction: one object for the session's life, serving each transaction in turn. */
  private readonly slots = new SessionSlot<OpenTransaction>();
  /** The same objects, for the rare lookups by a transaction's or a session's id (events from trace records). */
  private readonly opens = new Set<OpenTransaction>();
  /** Events for a session's next transaction (a policy refused a statement before its transaction began). */
  private readonly early = new Map<string, PendingEvent[]>();
  private readonly parents = new WeakMap<RequestInfo, SpanContext | null>();
  private readonly random: () => number;

  constructor(private readonly options: TransactionSpansOptions) {
    this.random = options.random ?? Math.random;
  }

  // ------------------------------------------------------------ tracker events

  transactionStarted(session: SessionInfo, tx: TransactionRecord): void {
    let open = this.slots.get(session);
    if (open === undefined) {
      open = { session, tx, statements: NONE, statementsOver: 0, request: null, parent: null, events: NONE, eventsOver: 0 };
      this.slots.set(session, open);
      this.opens.add(open);
    } else {
      open.tx = tx;
      // Arrays are made at the first statement or event kept: most transactions keep none.
      open.statements = NONE;
      open.statementsOver = 0;
      open.request = null;
      open.parent = null;
      open.events = NONE;
      open.eventsOver = 0;
    }
    // Looked up only when there is any: this runs for every transaction.
    const early = this.early.size === 0 ? undefined : this.early.get(session.id);
    if (early !== undefined) {
      this.early.delete(session.id);
      open.events = [...early];
    }
    this.notice(open, tx.request);
  }

  statementFinished(session: SessionInfo, s: StatementRecord): void {
    const open = this.slots.get(session);
    if (open === undefined || open.tx === null || open.tx.id !== s.transactionId) return;
    if (open.parent === null) this.notice(open, s.request);
    if (!this.wantsSpan(s)) return;
    if (open.statements.length >= this.options.maxStatementSpans) open.statementsOver++;
    else if (open.statements === NONE) open.statements = [s];
    else open.statements.push(s);
  }

  savepoint(session: SessionInfo, op: SavepointOp, name: string, depth: number, tx: TransactionRecord): void {
    const open = this.slots.get(session);
    if (open === undefined || open.tx !== tx) return;
    this.addEvent(open, { name: `txproxy.savepoint.${op}`, time: nowOn(tx), attributes: { 'txproxy.savepoint.name': name, 'txproxy.savepoint.depth': depth } });
  }

  transactionEnded(session: SessionInfo, tx: TransactionRecord): void {
    const open = this.slots.get(session);
    if (open === undefined || open.tx !== tx) return;
    const parent = this.parentFor(open);
    // Listeners run on the session's path: nothing here may throw into it.
    try {
      if (parent !== undefined) this.emit(open, tx, parent);
    } catch (err) {
      this.options.onError?.(err as Error);
    } finally {
      open.tx = null;
    }
  }

  sessionEnded(session: SessionInfo): void {
    this.early.delete(session.id);
    const open = this.slots.get(session);
    if (open === undefined) return;
    this.slots.delete(session);
    this.opens.delete(open);
  }

  // ------------------------------------------------------------ events from trace records

  /**
   * An event for the open transaction with this id; false when there is
   * none. Events are rare (a lock wait, a policy decision): a look through
   * the open transactions costs less than indexing every one by its id.
   */
  eventForTransaction(transactionId: string, event: PendingEvent): boolean {
    for (const open of this.opens) {
      if (open.tx === null || open.tx.id !== transactionId) continue;
      this.addEvent(open, event);
      return true;
    }
    return false;
  }

  /** An event for the session's open transaction, or else its next one. */
  eventForSession(sessionId: string, event: PendingEvent): void {
    for (const open of this.opens) {
      if (open.tx !== null && open.session.id === sessionId) {
        this.addEvent(open, event);
        return;
      }
    }
    const list = this.early.get(sessionId) ?? [];
    if (list.length < MAX_EVENTS) list.push(event);
    this.early.set(sessionId, list);
  }

  // ------------------------------------------------------------ spans

  private wantsSpan(s: StatementRecord): boolean {
    switch (this.options.statementSpans) {
      case 'all':
        return true;
      case 'none':
        return false;
      case 'slow':
        return s.durationMs >= this.options.slowStatementMs || s.error !== null || s.lockWaitMs > 0 || s.interrupted;
    }
  }

  /** Takes the first traceparent a transaction's statements carry. */
  private notice(open: OpenTransaction, request: RequestInfo): void {
    if (request.tags === null) return;
    let parent = this.parents.get(request);
    if (parent === undefined) {
      parent = parseTraceparent(request.tags.traceparent);
      this.parents.set(request, parent);
    }
    if (parent !== null) {
      open.parent = parent;
      open.request = request;
    }
  }

  /** The parent context of a traced transaction: null for a root span, undefined for no span at all. */
  private parentFor(open: OpenTransaction): SpanContext | null | undefined {
    if (open.parent !== null) return (open.parent.traceFlags & TraceFlags.SAMPLED) !== 0 ? open.parent : undefined;
    switch (this.options.untraced) {
      case 'off':
        return undefined;
      case 'root':
        return null;
      case 'sampled':
        return this.random() < this.options.untracedRatio ? null : undefined;
    }
  }

  private emit(open: OpenTransaction, tx: TransactionRecord, parent: SpanContext | null): void {
    const { tracer, server, text, exemplars } = this.options;
    const session = open.session;
    const request = open.request ?? tx.request;
    const parentContext = parent === null ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, parent);
    const attributes = transactionAttributes(tx, request, session, server);
    if (open.statementsOver > 0) attributes['txproxy.statement_spans_dropped'] = open.statementsOver;
    if (open.eventsOver > 0) attributes['txproxy.events_dropped'] = open.eventsOver;
    // Attributes are set on the span rather than passed to startSpan, which would copy them once more for the sampler.
    const span = tracer.startSpan(transactionSpanName(session), { kind: SpanKind.INTERNAL, startTime: tx.startedAt }, parentContext);
    span.setAttributes(attributes);
    const failed = tx.outcome === 'failed' || tx.outcome === 'disconnect' || tx.outcome === null;
    if (failed) span.setStatus({ code: SpanStatusCode.ERROR, message: this.failure(tx) });
    for (const event of open.events) span.addEvent(event.name, event.attributes, event.time);
    const context = span.spanContext();
    const statementParent = trace.setSpan(ROOT_CONTEXT, span);
    for (const s of open.statements) {
      // Both ends are one addition to the wall-clock start, as the transaction's end is: at that
      // magnitude a sum is rounded to a quarter of a microsecond, and `start + durationMs`, rounded
      // twice, could end a statement after its transaction.
      const offset = s.startMono - tx.startMono;
      const start = tx.startedAt + offset;
      const child = tracer.startSpan(statementSpanName(s, session), { kind: SpanKind.CLIENT, startTime: start }, statementParent);
      child.setAttributes(statementAttributes(s, session, server, text));
      if (s.error !== null) child.setStatus({ code: SpanStatusCode.ERROR, message: `${s.error.code}: ${text.errorMessage(s.error.message, s.text)}` });
      else if (s.interrupted) child.setStatus({ code: SpanStatusCode.ERROR, message: 'the session ended before the server answered' });
      child.end(tx.startedAt + (offset + s.durationMs));
      if (exemplars !== undefined && !s.interrupted) exemplars.statementTraced(session, s, context.traceId, child.spanContext().spanId);
    }
    span.end(tx.startedAt + tx.durationMs);
    exemplars?.transactionTraced(session, tx, context.traceId, context.spanId);
  }

  private failure(tx: TransactionRecord): string {
    if (tx.outcome === 'disconnect' || tx.outcome === null) return 'the client went away inside the transaction; txproxy closed the server connection, which rolled it back';
    const error = tx.firstError;
    return error === null ? 'failed' : `${error.code}: ${this.options.text.errorMessage(error.message)}`;
  }

  private addEvent(open: OpenTransaction, event: PendingEvent): void {
    if (open.events.length >= MAX_EVENTS) open.eventsOver++;
    else if (open.events === NONE) open.events = [event];
    else open.events.push(event);
  }
}

/** Now on the transaction's own time line (its wall-clock start plus monotonic time since). */
function nowOn(tx: TransactionRecord): number {
  return tx.startedAt + (performance.now() - tx.startMono);
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** A W3C traceparent as a remote span context; null when absent or malformed (all-zero ids, version ff). */
export function parseTraceparent(value: string | undefined): SpanContext | null {
  if (value === undefined) return null;
  const match = TRACEPARENT.exec(value.trim());
  if (match === null || match[1] === 'ff' || /^0+$/.test(match[2]) || /^0+$/.test(match[3])) return null;
  return { traceId: match[2], spanId: match[3], traceFlags: parseInt(match[4], 16) & 0xff, isRemote: true };
}

