/**
 * Where trace records go: NDJSON, one JSON.stringify of a flat record per
 * line, appended through a BufferedWriter (see there for why not a pino
 * logger: the trace is on every statement's path).
 */
import { terminalSafeJson } from './json-text.js';
import { BufferedWriter, type TraceDropReason, type WriterProblem } from './buffered-writer.js';

export interface TraceSink {
  /** One record as JSON text, without a line break. */
  writeLine(line: string): void;
  /** Resolves when what was written so far has reached the file. */
  flush(): Promise<void>;
  /** Opens the output again at its path (log rotation); nothing for stdout. */
  reopen?(): void;
  /** Records dropped so far, by reason. */
  droppedRecords?(): Readonly<Record<TraceDropReason, number>>;
}

/**
 * `-` is stdout; anything else a file, appended to, its missing directories
 * created. Throws a TraceFileError when the file cannot be opened.
 */
export function createTraceSink(output: string, onProblem?: (problem: WriterProblem) => void): TraceSink {
  const writer = output === '-' ? new BufferedWriter(1, { onProblem }) : BufferedWriter.open(output, { onProblem });
  return {
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
 */
export class TraceBus {
  private sinks: TraceSink[] = [];

  get active(): boolean {
    return this.sinks.length > 0;
  }

  attach(sink: TraceSink): () => void {
    this.sinks = [...this.sinks, sink];
    return () => {
      this.sinks = this.sinks.filter((s) => s !== sink);
    };
  }

  /** A record object: serialized once for all sinks, only when one is attached. */
  write(record: object): void {
    if (this.sinks.length === 0) return;
    this.writeLine(terminalSafeJson(JSON.stringify(record)));
  }

  writeLine(line: string): void {
    for (const sink of this.sinks) sink.writeLine(line);
  }

  async flush(): Promise<void> {
    await Promise.all(this.sinks.map((sink) => sink.flush()));
  }
}
