/**
 * `txproxy trace`: reads NDJSON trace records from a stream (a file or
 * stdin) or follows a live txproxy's `/events`, and prints the transcript.
 * main.ts opens the file and hands in the streams; this module reads and
 * writes only what it is given.
 */
import { once } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import { followEventStream, type EventStreamOptions } from './event-stream-client.js';
import { matchesFilter, type TraceFilter } from './filter.js';
import { LineSplitter } from './line-splitter.js';
import { printable } from './printable.js';
import { decodeLine } from './records.js';
import { renderItem } from './render.js';
import type { Style } from './style.js';
import { Transcript, type TranscriptItem } from './transcript.js';

export const TRACE_USAGE = `usage: txproxy trace [FILE|-] [--follow URL] [--session ID] [--route R] [--min-ms N]

Prints a trace (NDJSON, as written by --trace) as a transcript, one block per
transaction. Reads FILE, or standard input when FILE is - or absent.

  --follow URL    follow a running txproxy's live trace (its admin address,
                  e.g. http://127.0.0.1:9930; /events is added when no path is given;
                  the admin token comes from TXPROXY_ADMIN_TOKEN or TXPROXY_ADMIN_TOKEN_FILE)
  --session ID    only this session
  --route R       only requests whose sqlcommenter route is R
  --min-ms N      only transactions lasting at least N milliseconds

Colour on a terminal; NO_COLOR=1 turns it off, FORCE_COLOR=1 forces it.`;

/** A mistake on the command line: exit code 2. */
export class TraceUsageError extends Error {
  override name = 'TraceUsageError';
}

export interface TraceOptions {
  /** A file name, or `-` for standard input; null with --follow. */
  input: string | null;
  follow: URL | null;
  filter: TraceFilter;
  help: boolean;
}

export function parseTraceCommandLine(argv: string[]): TraceOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        follow: { type: 'string', short: 'f' },
        session: { type: 'string' },
        route: { type: 'string' },
        'min-ms': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new TraceUsageError(`${(err as Error).message}\n${TRACE_USAGE}`);
  }
  const v = parsed.values;
  const positionals = parsed.positionals;
  if (positionals.length > 1) throw new TraceUsageError(`expected at most one FILE, got ${positionals.length}\n${TRACE_USAGE}`);
  let minMs: number | null = null;
  if (v['min-ms'] !== undefined) {
    minMs = Number(v['min-ms']);
    if (v['min-ms'].trim() === '' || !Number.isFinite(minMs) || minMs < 0) {
      throw new TraceUsageError(`invalid value for '--min-ms': expected a number of milliseconds ≥ 0, got '${v['min-ms']}'`);
    }
  }
  let follow: URL | null = null;
  if (v.follow !== undefined) {
    if (positionals.length > 0) throw new TraceUsageError(`give either FILE or --follow URL, not both\n${TRACE_USAGE}`);
    follow = followUrl(v.follow);
  }
  return {
    input: follow !== null ? null : (positionals[0] ?? '-'),
    follow,
    filter: { sessionId: v.session ?? null, route: v.route ?? null, minMs },
    help: v.help === true,
  };
}

/** `http://127.0.0.1:9930` → `http://127.0.0.1:9930/events`; a bare `host:port` gets `http://`. */
function followUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`);
  } catch {
    throw new TraceUsageError(`invalid value for '--follow': '${text}' is not a URL; expected e.g. http://127.0.0.1:9930`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TraceUsageError(`invalid value for '--follow': expected an http:// or https:// URL, got '${text}'`);
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/events';
  return url;
}

/**
 * Records in, text out: decodes each line, groups, filters and renders.
 * Malformed lines go to `onMalformed` and are skipped.
 */
export class TraceRenderer {
  private readonly transcript = new Transcript();
  records = 0;
  malformed = 0;

  constructor(
    private readonly filter: TraceFilter,
    private readonly style: Style,
    private readonly onMalformed: (where: string, reason: string) => void,
  ) {}

  get holding(): boolean {
    return this.transcript.holding;
  }

  /** One NDJSON line (or SSE data payload); `where` names it in messages ("line 12"). */
  line(text: string, where: string): string {
    if (text.trim() === '') return '';
    const decoded = decodeLine(text);
    if (!decoded.ok) {
      this.malformed++;
      this.onMalformed(where, decoded.reason);
      return '';
    }
    if (decoded.event === null) return '';
    this.records++;
    return this.text(this.transcript.push(decoded.event));
  }

  releaseHeld(): string {
    return this.text(this.transcript.releaseHeld());
  }

  end(): string {
    return this.text(this.transcript.end());
  }

  private text(items: TranscriptItem[]): string {
    let out = '';
    for (const item of items) {
      if (!matchesFilter(item, this.filter)) continue;
      out += renderItem(item, this.style).join('\n') + '\n';
    }
    return out;
  }
}

export interface TraceIo {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  style: Style;
}

/** Renders a whole stream (file or stdin); resolves with the counts once it ended. */
export async function renderTraceStream(
  input: AsyncIterable<string | Buffer>,
  filter: TraceFilter,
  io: TraceIo,
): Promise<{ records: number; malformed: number }> {
  const renderer = new TraceRenderer(filter, io.style, (where, reason) => io.err.write(`txproxy trace: ${where}: ${reason}; skipped\n`));
  let pending = '';
  const splitter = new LineSplitter((line, n) => {
    pending += renderer.line(line, `line ${n}`);
  });
  const decoder = new StringDecoder('utf8');
  const flush = async () => {
    if (pending === '') return;
    const text = pending;
    pending = '';
    // Respect a slow reader (a pager): wait for the pipe to drain.
    if (!io.out.write(text)) await once(io.out, 'drain');
  };
  for await (const chunk of input) {
    splitter.push(typeof chunk === 'string' ? chunk : decoder.write(chunk));
    await flush();
  }
  splitter.push(decoder.end());
  splitter.end();
  pending += renderer.end();
  await flush();
  if (renderer.malformed > 0) {
    io.err.write(`txproxy trace: ${renderer.malformed} malformed ${renderer.malformed === 1 ? 'line' : 'lines'} skipped\n`);
  }
  return { records: renderer.records, malformed: renderer.malformed };
}

/** How long an ended transaction waits for its closing statement's record on a live stream. */
const HOLD_MS = 250;

export interface TraceFollower {
  /** Stops following and prints what is still open. */
  stop(): void;
}

/** Follows a live txproxy: each transaction is printed when it completes. */
export function followTrace(url: URL, filter: TraceFilter, io: TraceIo, options: EventStreamOptions = {}): TraceFollower {
  const renderer = new TraceRenderer(filter, io.style, (where, reason) => io.err.write(`txproxy trace: ${where}: ${reason}; skipped\n`));
  let events = 0;
  let holdTimer: NodeJS.Timeout | null = null;
  const write = (text: string) => {
    if (text !== '') io.out.write(text);
  };
  const client = followEventStream(
    url,
    {
      onEvent(data) {
        write(renderer.line(data, `event ${++events}`));
        if (holdTimer !== null) clearTimeout(holdTimer);
        holdTimer = renderer.holding ? setTimeout(() => write(renderer.releaseHeld()), HOLD_MS) : null;
      },
      onStatus(message) {
        // It may quote what the server answered (a content type).
        io.err.write(`txproxy trace: ${printable(message)}\n`);
      },
    },
    options,
  );
  return {
    stop() {
      client.stop();
      if (holdTimer !== null) clearTimeout(holdTimer);
      write(renderer.end());
    },
  };
}
