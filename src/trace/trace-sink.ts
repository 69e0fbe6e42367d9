/**
 * Where trace records go: NDJSON through pino's asynchronous destination
 * (SonicBoom), which batches lines into few write(2) calls.
 *
 * Records are serialized with one JSON.stringify of a flat object rather
 * than through a pino logger: the trace is on the hot path of every
 * statement, its records have no level or message, and pino's per-key
 * serializer would cost several times more per record.
 */
import pino from 'pino';

export interface TraceSink {
  write(record: object): void;
  /** Writes out what is buffered (at shutdown). */
  flush(): void;
}

/** `-` is stdout; anything else a file, appended to, its directory created. */
export function createTraceSink(output: string): TraceSink {
  const destination =
    output === '-'
      ? pino.destination({ dest: 1, sync: false, minLength: 4096 })
      : pino.destination({ dest: output, sync: false, mkdir: true, append: true, minLength: 4096 });
  return {
    write(record) {
      destination.write(JSON.stringify(record) + '\n');
    },
    flush() {
      try {
        destination.flushSync();
      } catch {
        // Not yet open, or already closed: nothing buffered to lose.
      }
    },
  };
}

/** Collects records in memory (tests, the admin API's live stream). */
export class MemoryTraceSink implements TraceSink {
  readonly records: Record<string, unknown>[] = [];
  write(record: object): void {
    this.records.push(record as Record<string, unknown>);
  }
  flush(): void {}
}

/**
 * The App's one trace bus: every record (statements, transactions, lock
 * waits, policy decisions) goes to each attached sink — the trace file, the
 * admin API's live stream, tests. With no sink attached, writers skip
 * building records at all (`active` is false).
 */
export class TraceBus implements TraceSink {
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

  write(record: object): void {
    for (const sink of this.sinks) sink.write(record);
  }

  flush(): void {
    for (const sink of this.sinks) sink.flush();
  }
}
