/**
 * Where trace records go: NDJSON, one JSON.stringify of a flat record per
 * line, appended through a BufferedWriter (see there for why not a pino
 * logger: the trace is on every statement's path).
 */
import { terminalSafeJson } from './json-text.js';
import { BufferedWriter, type TraceDropReason, type WriterProblem } from './buffered-writer.js';
import type { LineWriter } from './json-bytes.js';
import type { KeepRules } from './keep-rules.js';
import { TailSampler, type RecordText } from './tail-sampler.js';
import type { SessionInfo, StatementRecord, TransactionRecord } from '../tracker/types.js';

export interface TraceSink {
  /** One record as JSON text, without a line break. */
  writeLine(line: string): void;
  /**
   * Where a record's bytes can be encoded directly, when the sink is a
   * file: a record then never becomes a string (json-bytes.ts says why).
   */
  lines?: LineWriter;
  /** Resolves when what was written so far has reached the file. */
  flush(): Promise<void>;
  /** Opens the output again at its path (log rotation); nothing for stdout. */
  reopen?(): void;
  /** Records dropped so far, by reason. */
  droppedRecords?(): Readonly<Record<TraceDropReason, number>>;
  /**
   * False when the sink reads only the records that stand on their own
   * (lock waits, deadlocks, policy decisions): session, statement and
   * transaction records are then not built for it, on every statement's path.
   */
  wantsTranscript?: boolean;
}

/**
 * `-` is stdout; anything else a file, appended to, its missing directories
 * created. Throws a TraceFileError when the file cannot be opened.
 */
export function createTraceSink(output: string, onProblem?: (problem: WriterProblem) => void): TraceSink {
  return ndjsonSink(openTraceWriter(output, onProblem));
}

/** The writer for a trace output: stdout for `-`, else the file (throws a TraceFileError). */
export function openTraceWriter(output: string, onProblem?: (problem: WriterProblem) => void): BufferedWriter {
  return output === '-' ? new BufferedWriter(1, { onProblem }) : BufferedWriter.open(output, { onProblem });
}

/** NDJSON: each record's JSON text on a line of its own. */
export function ndjsonSink(writer: BufferedWriter): TraceSink {
  return {
    lines: writer,
    writeLine(line) {
      writer.writeLine(line);
    },
    flush() {
      return writer.flush();
    },
    reopen() {
      writer.reopen();
    },
    droppedRecords() {
      return writer.droppedRecords;
    },
  };
}

/** RecordText that also encodes its lines straight into a LineWriter (the TraceWriter). */
export interface RecordEncoder extends RecordText {
  encodeStatement(out: LineWriter, session: SessionInfo, statement: StatementRecord): void;
  encodeTransaction(out: LineWriter, session: SessionInfo, transaction: TransactionRecord): void;
}

/** Collects records in memory (tests, the admin API's live stream). */
export class MemoryTraceSink implements TraceSink {
  readonly records: Record<string, unknown>[] = [];
  writeLine(line: string): void {
    this.records.push(JSON.parse(line) as Record<string, unknown>);
  }
  async flush(): Promise<void> {}
}

/**
 * The App's one trace bus: every record (statements, transactions, lock
 * waits, policy decisions) goes to each attached sink — the trace file, the
 * admin API's live stream, tests. With no sink attached, writers skip
 * building records at all (`active` is false).
 *
 * With tail sampling (`trace.keep`), the records of a transaction pass a
 * TailSampler first, which writes or drops them together; without it
 * (every transaction kept, the default), they go straight to the sinks.
 */
export class TraceBus {
  private sinks: TraceSink[] = [];
  private transcriptSinks = 0;
  /**
   * The LineWriter of the one sink that wants the transcript, when it has
   * one: statement and transaction records are then encoded into it (the
   * others skip them).
   */
  private direct: LineWriter | null = null;
  private sampler: TailSampler | null = null;

  get active(): boolean {
    return this.sinks.length > 0;
  }

  /** Some sink reads session, statement and transaction records (see TraceSink.wantsTranscript). */
  get writesTranscript(): boolean {
    return this.transcriptSinks > 0;
  }

  /** Tail sampling by these rules; null keeps every transaction. */
  keep(rules: KeepRules | null, random?: () => number): void {
    this.sampler = rules === null ? null : new TailSampler(rules, (line) => this.writeLine(line), random);
  }

  /** Transactions the tail sampling kept and dropped so far; null without it. */
  get sampled(): Readonly<{ kept: number; dropped: number }> | null {
    return this.sampler?.counts ?? null;
  }

  attach(sink: TraceSink): () => void {
    this.setSinks([...this.sinks, sink]);
    return () => this.setSinks(this.sinks.filter((s) => s !== sink));
  }

  private setSinks(sinks: TraceSink[]): void {
    this.sinks = sinks;
    const transcript = sinks.filter((s) => s.wantsTranscript !== false);
    this.transcriptSinks = transcript.length;
    this.direct = transcript.length === 1 ? (transcript[0].lines ?? null) : null;
  }

  /** A record object: serialized once for all sinks, only when one is attached. */
  write(record: object): void {
    if (this.sinks.length === 0) return;
    const line = terminalSafeJson(JSON.stringify(record));
    if (this.sampler === null) this.writeLine(line);
    else this.sampler.record(record as Record<string, unknown>, line);
  }

  /**
   * A statement record, its JSON text built by `text`: at once (into the
   * file's buffer, when the file is the one sink), or with tail sampling
   * only if its transaction is kept.
   */
  writeStatement(session: SessionInfo, statement: StatementRecord, text: RecordEncoder): void {
    if (this.sampler !== null) this.sampler.statement(session, statement, text);
    else if (this.direct !== null) text.encodeStatement(this.direct, session, statement);
    else this.writeLine(text.statementLine(session, statement));
  }

  /** A transaction record: its transaction's records are written or dropped with it. */
  writeTransaction(session: SessionInfo, transaction: TransactionRecord, text: RecordEncoder): void {
    if (this.sampler !== null) this.sampler.transaction(session, transaction, text);
    else if (this.direct !== null) text.encodeTransaction(this.direct, session, transaction);
    else this.writeLine(text.transactionLine(session, transaction));
  }

  /** Told of every session, traced or not, so that tail sampling forgets ended ones. */
  sessionStarted(sessionId: string): void {
    this.sampler?.sessionStarted(sessionId);
  }

  sessionEnded(sessionId: string): void {
    this.sampler?.sessionEnded(sessionId);
  }

  /** A line for every sink, as it is. */
  writeLine(line: string): void {
    for (const sink of this.sinks) sink.writeLine(line);
  }

  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.flush()));
  }
}
