/**
 * The trace as a live transcript (`trace.format: transcript`, or `auto` on
 * a terminal): the records txproxy writes are rendered as `txproxy trace`
 * renders them, one block per transaction as it completes, so someone
 * watching `npm start` sees BEGIN … COMMIT as it happens.
 *
 * A sink like the NDJSON one, fed the same JSON text: it decodes each
 * record again, which costs more than appending it, and is meant for
 * people reading along, not for production rates.
 */
import type { TraceSink } from '../trace/trace-sink.js';
import { NO_FILTER } from './filter.js';
import type { Style } from './style.js';
import { TraceRenderer } from './trace-command.js';

/** What the transcript is written to: a BufferedWriter on stdout or a file. */
export interface TextWriter {
  write(text: string): void;
  flush(): Promise<void>;
  reopen?(): void;
  readonly droppedRecords?: Readonly<Record<'backlog' | 'write_error', number>>;
}

/**
 * How long an ended transaction waits for more of its records before it is
 * shown (the transcript holds the one that ended last: transcript.ts).
 */
const HOLD_MS = 250;

export function transcriptSink(writer: TextWriter, style: Style, holdMs = HOLD_MS): TraceSink {
  // Records come from this process's own trace writer: none is malformed.
  const renderer = new TraceRenderer(NO_FILTER, style, () => undefined);
  let records = 0;
  let holdTimer: NodeJS.Timeout | null = null;
  const emit = (text: string) => {
    if (text !== '') writer.write(text);
  };
  const releaseHeld = () => {
    holdTimer = null;
    emit(renderer.releaseHeld());
  };
  const sink: TraceSink = {
    writeLine(line) {
      emit(renderer.line(line, `record ${++records}`));
      if (holdTimer !== null) clearTimeout(holdTimer);
      holdTimer = renderer.holding ? setTimeout(releaseHeld, holdMs).unref() : null;
    },
    /** Shows a transaction still held, then flushes: nothing waits for a record that may never come. */
    flush() {
      if (holdTimer !== null) clearTimeout(holdTimer);
      releaseHeld();
      return writer.flush();
    },
  };
  if (writer.reopen !== undefined) sink.reopen = () => writer.reopen!();
  const dropped = writer.droppedRecords;
  if (dropped !== undefined) sink.droppedRecords = () => dropped;
  return sink;
}
