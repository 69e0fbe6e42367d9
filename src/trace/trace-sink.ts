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
