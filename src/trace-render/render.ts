/**
 * Turns transcript items into text lines, in the spirit of a PostgreSQL log
 * with `log_statement = all`, annotated with transaction boundaries:
 *
 *   ── tx 7.t3 · explicit · commit · 6.87 ms · 10 statements · 3 writes
 *      2026-11-23 16:50:12.915 UTC · session 7 · request 7.r1 · db postgres · pid 12154
 *         #3    0.37 ms  BEGIN         BEGIN
 *         #4    0.32 ms  INSERT 0 1    INSERT INTO items (name) VALUES ('c')
 *         #5    0.08 ms  SAVEPOINT     SAVEPOINT a
 *         #6    0.34 ms  INSERT 0 1    │ INSERT INTO items (name) VALUES ('d')
 *
 * Pure: items and a Style in, lines out (no trailing newlines). Every item
 * ends with an empty line.
 */
import { needlessReadOnly, savepointTree, type StatementPlace } from './findings.js';
import type { DeadlockEvent, DryRunEvent, LockWaitEvent, NoteEvent, PinEvent, PolicyEvent, SessionEvent, StatementEvent } from './record-types.js';
import type { Style, Tone } from './style.js';
import type { RequestSummary, TransactionBlock, TranscriptItem } from './transcript.js';

const SEQ_WIDTH = 5;
const DURATION_WIDTH = 10;
const TAG_WIDTH = 13;
/** Where the SQL starts on a statement line; detail lines hang from here. */
const SQL_COLUMN = 2 + SEQ_WIDTH + 1 + DURATION_WIDTH + 2 + TAG_WIDTH + 1;
/** Blocking statements listed per blocker before eliding the older ones. */
const BLOCKER_STATEMENTS_SHOWN = 10;

export function renderItem(item: TranscriptItem, style: Style): string[] {
  switch (item.type) {
    case 'transaction':
      return [...renderBlock(item.block, style), ''];
    case 'session':
      return [renderSession(item.event, style), ''];
    case 'pin':
      return [renderPin(item.event, style), ''];
    case 'statement':
      return [...renderLooseStatement(item.statement, item.late, style), ''];
    case 'note':
      return [...renderLooseNote(item.event, item.late, style), ''];
    case 'dry_run':
      return [...renderDryRun(item.event, style), ''];
    case 'request':
      return [...renderRequest(item.summary, style), ''];
  }
}

// ------------------------------------------------------------ transactions

export function renderBlock(block: TransactionBlock, style: Style): string[] {
  const lines = [blockTitle(block, style), '   ' + style('meta', blockDetails(block))];
  if (block.notAtomicAfter !== null) {
    const earlier = block.notAtomicAfter;
    lines.push(
      '   ' +
        style('warning', 'WARNING') +
        ` not atomic: autocommit transaction ${earlier.length + 1} with writes in request ${block.tx?.requestId ?? '?'}` +
        ` (after ${earlier.join(', ')}); a failure between them leaves the earlier writes committed`,
    );
  }
  const reads = needlessReadOnly(block);
  if (reads !== null) {
    lines.push(
      '   ' +
        style('notice', 'NOTICE') +
        ` read-only: ${plural(reads, 'read')}, no writes or row locks; this transaction was not needed` +
        ' (at READ COMMITTED each statement takes its own snapshot anyway)',
    );
  }
  const places = savepointTree(block.statements);
  // A deadlock record belongs with the statement that got 40P01, wherever it arrived.
  const victim = block.statements.find((s) => s.sqlstate === '40P01');
  const notes = block.notes.map((n) => (victim !== undefined && n.event.kind === 'deadlock' ? { ...n, anchorSeq: victim.seq } : n));
  // Records that came before any statement (e.g. a policy check on the first one).
  for (const note of takeNotes(notes, (n) => n.anchorSeq < (block.statements[0]?.seq ?? Infinity))) {
    lines.push(...hang(noteLines(note.event, false, style), ' '.repeat(SQL_COLUMN) + '  '));
  }
  block.statements.forEach((statement, i) => {
    const next = block.statements[i + 1]?.seq ?? Infinity;
    const place = places[i];
    lines.push(statementLine(statement, place, style));
    const below = ' '.repeat(SQL_COLUMN) + gutter(place, style) + '  ';
    if (statement.sqlstate !== null) {
      lines.push(below + style('error', `ERROR ${statement.sqlstate}`) + (statement.errorMessage ? `: ${statement.errorMessage}` : ''));
    }
    const own = takeNotes(notes, (n) => n.anchorSeq >= statement.seq && n.anchorSeq < next);
    if (statement.lockWaitMs > 0 && !own.some((n) => n.event.kind === 'lock_wait')) {
      lines.push(below + style('lock', 'LOCK WAIT') + ` ${formatMs(statement.lockWaitMs)} (blockers not recorded)`);
    }
    for (const note of own) lines.push(...hang(noteLines(note.event, false, style), below));
  });
  for (const note of notes) lines.push(...hang(noteLines(note.event, false, style), ' '.repeat(SQL_COLUMN) + '  '));
  return lines;
}

function blockTitle(block: TransactionBlock, style: Style): string {
  const tx = block.tx;
  if (tx === null) {
    return (
      style('header', `── tx ${block.id}`) +
      ' · ' +
      style('error', 'unfinished') +
      ` · no transaction record (still open, or the trace was cut) · ${plural(block.statements.length, 'statement')} seen`
    );
  }
  const outcome = tx.outcome ?? 'unknown';
  return [
    style('header', `── tx ${block.id}`),
    tx.implicit ? 'implicit (autocommit)' : 'explicit',
    style(outcomeTone(outcome), outcome),
    style('duration', formatMs(tx.durationMs)),
    plural(tx.statements, 'statement'),
    plural(tx.writes, 'write'),
  ].join(' · ');
}

function blockDetails(block: TransactionBlock): string {
  const tx = block.tx;
  const first = block.statements[0];
  const parts = [formatTime(tx?.time ?? first?.time ?? ''), `session ${block.sessionId}`];
  const requestId = tx?.requestId ?? first?.requestId ?? null;
  const route = tx?.route ?? block.statements.find((s) => s.route !== null)?.route ?? null;
  if (requestId !== null) parts.push(`request ${requestId}`);
  if (route !== null) parts.push(`route ${route}`);
  if (tx?.database) parts.push(`db ${tx.database}`);
  const pid = tx?.backendPid ?? first?.backendPid ?? null;
  if (pid !== null && pid !== 0) parts.push(`pid ${pid}`);
  if (tx !== null) {
    if (tx.savepointsCreated > 0) parts.push(`${plural(tx.savepointsCreated, 'savepoint')} (${tx.savepointsRolledBack} rolled back to)`);
    if (tx.lockWaitMs > 0) parts.push(`waited on locks ${formatMs(tx.lockWaitMs)}`);
    if (tx.idleInTransactionMs >= 1) parts.push(`idle in transaction ${formatMs(tx.idleInTransactionMs)}`);
    if (tx.firstError !== null) parts.push(`first error ${tx.firstError.code}`);
    // Left out by tail sampling (trace.keep) on purpose, or lost (a file cut short, records dropped).
    const left = Math.min(tx.statementsDropped, tx.statements - block.statements.length);
    if (left > 0) parts.push(`${plural(left, 'statement')} not traced (trace.keep held too many)`);
    const missing = tx.statements - block.statements.length - left;
    if (missing > 0) parts.push(`${plural(missing, 'statement')} missing from the trace`);
  }
  return parts.join(' · ');
}

function outcomeTone(outcome: string): Tone {
  if (outcome === 'commit' || outcome === 'prepared') return 'ok';
  if (outcome === 'rollback') return 'rollback';
  return 'error';
}

const NO_PLACE: StatementPlace = { indent: 0, rolledBackBy: null, rolledBackLevel: 0, undid: [] };

function statementLine(s: StatementEvent, place: StatementPlace, style: Style): string {
  const seq = `#${s.seq}`.padStart(SEQ_WIDTH);
  const duration = style('duration', formatMs(s.durationMs).padStart(DURATION_WIDTH));
  const [tagText, tagTone] = tagOf(s);
  const tag = style(tagTone, tagText.padEnd(TAG_WIDTH));
  const sql = s.text !== null ? oneLine(s.text) : `(${s.operation || 'statement'}; SQL not traced)`;
  let suffix = '';
  if (place.rolledBackBy !== null) suffix += '  ' + style('rollback', `↶ rolled back by #${place.rolledBackBy}`);
  if (place.undid.length > 0) suffix += '  ' + style('rollback', `↶ undid ${seqList(place.undid)}`);
  if (s.interrupted) suffix += '  ' + style('error', '(the session ended before the server answered)');
  if (s.suspended) suffix += '  ' + style('meta', `(portal suspended after ${plural(s.rows ?? 0, 'row')})`);
  suffix += originNote(s, style);
  const sqlTone: Tone = place.rolledBackBy !== null ? 'undone' : 'sql';
  return `  ${seq} ${duration}  ${tag} ${gutter(place, style)}${style(sqlTone, sql)}${suffix}`;
}

/** A policy's statement: sent by txproxy itself, or in place of the client's. */
function originNote(s: StatementEvent, style: Style): string {
  if (s.origin === 'proxy') return '  ' + style('policy', '(sent by txproxy)');
  if (s.origin !== 'rewritten') return '';
  return '  ' + style('policy', s.clientText !== null ? `(txproxy, for the client's: ${oneLine(s.clientText)})` : "(txproxy, for the client's statement)");
}

function tagOf(s: StatementEvent): [string, Tone] {
  if (s.sqlstate !== null) return [`ERROR ${s.sqlstate}`, 'error'];
  if (s.interrupted) return ['INTERRUPTED', 'error'];
  if (s.suspended) return ['SUSPENDED', 'tag'];
  return [s.commandTag ?? '—', 'tag'];
}

/** One `│ ` per open savepoint; the levels a ROLLBACK TO rewound are drawn `╎ `. */
function gutter(place: StatementPlace, style: Style): string {
  if (place.indent === 0) return '';
  let text = '';
  for (let level = 1; level <= place.indent; level++) {
    text += place.rolledBackBy !== null && level >= place.rolledBackLevel ? '╎ ' : '│ ';
  }
  return style('tree', text);
}

function takeNotes<T extends { event: NoteEvent }>(notes: T[], pick: (n: T) => boolean): T[] {
  const taken: T[] = [];
  for (let i = 0; i < notes.length; ) {
    if (pick(notes[i])) taken.push(...notes.splice(i, 1));
    else i++;
  }
  return taken;
}

// ------------------------------------------------------------------ notes

function noteLines(event: NoteEvent, standalone: boolean, style: Style): string[] {
  switch (event.kind) {
    case 'lock_wait':
      return lockWaitLines(event, standalone, style);
    case 'deadlock':
      return deadlockLines(event, style);
    case 'policy':
      return policyLines(event, standalone, style);
  }
}

function lockWaitLines(w: LockWaitEvent, standalone: boolean, style: Style): string[] {
  const target = [w.lockMode ?? 'a lock', 'on', w.lockType ?? 'an object'].join(' ') + (w.relation ? ` of ${w.relation}` : '');
  const lines = [
    style('lock', 'LOCK WAIT') +
      ` ${formatMs(w.durationMs)} for ${target}` +
      (w.blockedBy.length > 0 ? ', blocked by:' : ' (blocker not identified)'),
  ];
  if (standalone && w.text !== null) lines.push(`  waiting: ${oneLine(w.text)}`);
  for (const b of w.blockedBy) {
    if (b.sessionId !== null) {
      const who = [`pid ${b.pid ?? '?'}`, `session ${b.sessionId}`];
      if (b.transactionId !== null) who.push(`tx ${b.transactionId}`);
      if (b.route !== null) who.push(`route ${b.route}`);
      lines.push('  ' + who.join(' · '));
      const statements = b.statements ?? [];
      const hidden = statements.length - BLOCKER_STATEMENTS_SHOWN;
      if (hidden > 0) lines.push(style('meta', `    … ${plural(hidden, 'earlier statement')}`));
      for (const s of statements.slice(Math.max(0, hidden))) lines.push(`    #${s.seq} ${oneLine(s.text)}`);
    } else {
      const who = [`pid ${b.pid ?? '?'}`, 'outside txproxy'];
      if (b.applicationName) who.push(`application ${b.applicationName}`);
      if (b.state !== null) who.push(b.state);
      lines.push('  ' + who.join(' · '));
      if (b.query !== null) lines.push(`    ${oneLine(b.query)}`);
    }
  }
  return lines;
}

function deadlockLines(d: DeadlockEvent, style: Style): string[] {
  const lines = [style('error', 'DEADLOCK') + ` among ${plural(d.processes.length, 'process', 'processes')}; victim pid ${d.backendPid ?? '?'}:`];
  for (const p of d.processes) {
    const who = [`pid ${p.pid ?? '?'}${p.victim ? ' (victim)' : ''}`];
    who.push(p.sessionId !== null ? `session ${p.sessionId}` : 'outside txproxy');
    if (p.transactionId !== null) who.push(`tx ${p.transactionId}`);
    if (p.route !== null) who.push(`route ${p.route}`);
    if (p.waitsFor !== null) who.push(`waits for ${p.waitsFor}`);
    if (p.blockedByPid !== null) who.push(`blocked by pid ${p.blockedByPid}`);
    lines.push('  ' + who.join(' · '));
    if (p.lastStatement !== null) lines.push(`    last: ${oneLine(p.lastStatement)}`);
  }
  return lines;
}

function policyLines(p: PolicyEvent, standalone: boolean, style: Style): string[] {
  const how = [p.mode, p.action].filter((x): x is string => x !== null).join(', ');
  const lines = [
    style('policy', 'POLICY') +
      ` ${p.rule}${how ? ` (${how})` : ''}: ${p.decision}${p.sqlstate !== null ? ` ${p.sqlstate}` : ''}${p.message ? `: ${p.message}` : ''}`,
  ];
  if (standalone && p.text !== null) lines.push(`  ${oneLine(p.text)}`);
  return lines;
}

function hang(lines: string[], prefix: string): string[] {
  return lines.map((line) => prefix + line);
}

// ----------------------------------------------------------- other items

function renderSession(e: SessionEvent, style: Style): string {
  const parts = [style('header', `── session ${e.sessionId} ${e.event === 'start' ? 'started' : 'ended'}`)];
  if (e.event === 'start') {
    if (e.user !== null || e.database !== null) parts.push(`${e.user ?? '?'}@${e.database ?? '?'}`);
    if (e.applicationName) parts.push(`application ${e.applicationName}`);
    if (e.clientAddress) parts.push(`client ${e.clientAddress}`);
    if (e.backendPid) parts.push(`pid ${e.backendPid}`);
  } else {
    if (e.clean !== null) parts.push(e.clean ? 'clean' : style('error', 'abrupt (no Terminate)'));
    if (e.durationMs !== null) parts.push(`after ${formatMs(e.durationMs)}`);
  }
  parts.push(style('meta', formatTime(e.time)));
  return parts.join(' · ');
}

/** `── pinned to backend 1234: listen, temp_table · session k3x9qa-7 · <time>` (transaction pooling). */
function renderPin(e: PinEvent, style: Style): string {
  const backend = `backend ${e.backendPid ?? '?'}`;
  const title = e.kind === 'pin' ? `── pinned to ${backend}` : `── unpinned from ${backend}`;
  const reasons = e.reasons.length > 0 ? `: ${e.reasons.join(', ')}` : '';
  return style('header', title) + reasons + ` · session ${e.sessionId} · ` + style('meta', formatTime(e.time));
}

function renderLooseStatement(s: StatementEvent, late: boolean, style: Style): string[] {
  const title = late
    ? `── late record of tx ${s.transactionId} (shown above) · session ${s.sessionId}`
    : `── outside any transaction · session ${s.sessionId}`;
  const lines = [style('header', title) + ' · ' + style('meta', formatTime(s.time)), statementLine(s, NO_PLACE, style)];
  if (s.sqlstate !== null) {
    lines.push(' '.repeat(SQL_COLUMN + 2) + style('error', `ERROR ${s.sqlstate}`) + (s.errorMessage ? `: ${s.errorMessage}` : ''));
  }
  return lines;
}

function renderLooseNote(e: NoteEvent, late: boolean, style: Style): string[] {
  const what = e.kind === 'lock_wait' ? 'lock wait' : e.kind;
  const title = late
    ? `── late ${what} record of tx ${e.transactionId} (shown above) · session ${e.sessionId}`
    : `── ${what} outside any transaction · session ${e.sessionId}`;
  const request = e.requestId !== null ? ` · request ${e.requestId}` : '';
  return [style('header', title) + request + ' · ' + style('meta', formatTime(e.time)), ...hang(noteLines(e, true, style), '    ')];
}

function renderDryRun(e: DryRunEvent, style: Style): string[] {
  const parts = [style('header', '── dry run'), `session ${e.sessionId}`];
  if (e.requestId !== null) parts.push(`request ${e.requestId}`);
  if (e.route !== null) parts.push(`route ${e.route}`);
  const total = e.rowsTotal ?? e.changes.reduce((n, c) => n + (c.rows ?? 0), 0);
  parts.push(`${plural(total, 'row')} would have changed`, style('rollback', e.rolledBack ? 'rolled back' : 'NOT rolled back'));
  parts.push(style('meta', formatTime(e.time)));
  const lines = [parts.join(' · ')];
  for (const c of e.changes) {
    const rows = c.rows === null ? '' : plural(c.rows, 'row');
    lines.push(`    ${style('tag', c.command.padEnd(8))} ${rows.padStart(10)}  ${c.statement !== null ? oneLine(c.statement) : ''}`.trimEnd());
  }
  return lines;
}

function renderRequest(r: RequestSummary, style: Style): string[] {
  const parts = [style('header', `── request ${r.requestId}`), `session ${r.sessionId}`];
  if (r.route !== null) parts.push(`route ${r.route}`);
  return [
    parts.join(' · '),
    '   ' +
      style('warning', 'WARNING') +
      ` not atomic: ${r.writeTransactions.length} separate autocommit transactions wrote (${r.writeTransactions.join(', ')});` +
      ' a failure part-way leaves the earlier writes committed (orphan rows): run the request in one transaction',
  ];
}

// ------------------------------------------------------------- formatting

/** `2026-11-23T16:50:12.915Z` → `2026-11-23 16:50:12.915 UTC`, as PostgreSQL's %m prints it. */
export function formatTime(iso: string): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d(?:\.\d+)?)Z$/.exec(iso);
  return m === null ? iso : `${m[1]} ${m[2]} UTC`;
}

export function formatMs(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

/** SQL on one line: whitespace runs (newlines included) become one space. */
function oneLine(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim();
}

function seqList(seqs: number[]): string {
  const contiguous = seqs.every((s, i) => i === 0 || s === seqs[i - 1] + 1);
  const list = contiguous && seqs.length > 2 ? `#${seqs[0]}–#${seqs.at(-1)}` : seqs.map((s) => `#${s}`).join(', ');
  return `${list} (${plural(seqs.length, 'statement')})`;
}
