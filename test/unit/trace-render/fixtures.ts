/**
 * Trace records in their written form (flat JSON, dotted keys, as
 * src/trace/trace-writer.ts writes them and docs/traces.md lists them), and a
 * reader of the rendered transcript's structure for assertions.
 */
import { NO_FILTER, type TraceFilter } from '../../../src/trace-render/filter.js';
import { plainStyle, type Style } from '../../../src/trace-render/style.js';
import { TraceRenderer } from '../../../src/trace-render/trace-command.js';

type Rec = Record<string, unknown>;

let clock = Date.parse('2026-01-02T03:04:05.000Z');
const tick = () => new Date((clock += 1)).toISOString();

export function statement(session: string, tx: string | null, seq: number, sql: string, fields: Rec = {}): Rec {
  const operation = sql.split(/\s+/)[0].toUpperCase();
  return {
    kind: 'statement',
    time: tick(),
    duration_ms: 0.5,
    'session.id': session,
    'transaction.id': tx,
    'statement.seq': seq,
    'db.system.name': 'postgresql',
    'db.namespace': 'app',
    'db.operation.name': operation,
    'db.query.text': sql,
    'db.response.status_code': null,
    'db.response.returned_rows': null,
    'pg.command_tag': operation,
    'pg.savepoint_depth': 0,
    'pg.lock_wait_ms': 0,
    'request.id': `${session}.r1`,
    ...fields,
  };
}

export function transaction(session: string, id: string, fields: Rec = {}): Rec {
  return {
    kind: 'transaction',
    time: tick(),
    end: tick(),
    duration_ms: 2,
    'transaction.id': id,
    'session.id': session,
    'db.namespace': 'app',
    'pg.backend_pid': 4000,
    outcome: 'commit',
    implicit: true,
    statements: 1,
    writes: 0,
    'savepoints.created': 0,
    'savepoints.released': 0,
    'savepoints.rolled_back': 0,
    'savepoints.max_depth': 0,
    idle_in_transaction_ms: 0,
    lock_wait_ms: 0,
    first_error: null,
    'request.id': `${session}.r1`,
    ...fields,
  };
}

export function session(id: string, event: 'start' | 'end'): Rec {
  return event === 'start'
    ? { kind: 'session', event, time: tick(), 'session.id': id, 'db.namespace': 'app', 'db.user': 'web', 'client.address': '10.0.0.5', 'application.name': 'shop', 'pg.backend_pid': 4000 }
    : { kind: 'session', event, time: tick(), 'session.id': id, 'db.namespace': 'app', duration_ms: 12, clean: true };
}

/** A `pin` or `unpin` record (transaction pooling), as src/pool/pin-report.ts writes it. */
export function pin(id: string, kind: 'pin' | 'unpin', backendPid: number, reasons: string[]): Rec {
  return { kind, time: tick(), 'session.id': id, 'db.namespace': 'app', 'pg.backend_pid': backendPid, reasons };
}

/** Renders records (objects, or raw lines) with plain style; collects what is reported as malformed. */
export function render(
  records: (Rec | string)[],
  filter: TraceFilter = NO_FILTER,
  style: Style = plainStyle,
): { text: string; problems: string[] } {
  const problems: string[] = [];
  const renderer = new TraceRenderer(filter, style, (where, reason) => problems.push(`${where}: ${reason}`));
  let text = '';
  records.forEach((r, i) => {
    text += renderer.line(typeof r === 'string' ? r : JSON.stringify(r), `line ${i + 1}`);
  });
  text += renderer.end();
  return { text, problems };
}

export interface StatementLine {
  seq: number;
  tag: string;
  /** Savepoint levels drawn before the SQL. */
  indent: number;
  /** The gutter as drawn: `│` for open levels, `╎` for rewound ones. */
  gutter: string;
  sql: string;
  /** Annotations after the SQL (`↶ rolled back by #10`). */
  suffix: string;
  /** Lines hanging below the statement (errors, lock waits, …), trimmed. */
  details: string[];
}

export interface Block {
  title: string;
  lines: string[];
  statements: StatementLine[];
}

/** Cuts a transcript into its blocks (separated by empty lines) and reads each statement line. */
export function blocksOf(text: string): Block[] {
  return text
    .split(/\n\n+/)
    .map((chunk) => chunk.split('\n').filter((l) => l !== ''))
    .filter((lines) => lines.length > 0)
    .map((lines) => {
      const statements: StatementLine[] = [];
      for (const line of lines.slice(1)) {
        const m = /^\s+#(\d+)\s+[\d.]+ m?s\s/.exec(line);
        if (m === null) {
          // Hanging lines repeat the statement's savepoint gutter; keep just their text.
          statements.at(-1)?.details.push(line.trim().replace(/^(?:[│╎] ?)+\s*/, ''));
          continue;
        }
        // Columns are separated by two or more spaces; SQL has its whitespace collapsed.
        const [, , tag, rest, ...suffix] = line.trim().split(/\s{2,}/);
        const gutter = /^((?:[│╎] )*)/.exec(rest)![1];
        statements.push({
          seq: Number(m[1]),
          tag,
          indent: gutter.length / 2,
          gutter: gutter.replace(/ /g, ''),
          sql: rest.slice(gutter.length),
          suffix: suffix.join('  '),
          details: [],
        });
      }
      return { title: lines[0], lines, statements };
    });
}

export const transactionBlocks = (text: string) => blocksOf(text).filter((b) => b.title.startsWith('── tx '));
