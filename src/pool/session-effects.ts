/**
 * What one statement may do to the state of the server session it runs on:
 * change session settings (which txproxy can carry to another server), or
 * leave state tied to that backend (which pins the client to it).
 *
 * It reads leading words and function calls only, so it errs one way: a
 * statement it cannot place is `unknown`, and anything it says may have
 * been released is only a hint that the server should be asked
 * (session-probe.ts). What it counts as harmless: SELECT, VALUES, TABLE,
 * WITH, INSERT, UPDATE, DELETE, MERGE, COPY, transaction control, SHOW,
 * EXPLAIN, FETCH, MOVE, NOTIFY, LOCK, schema changes outside pg_temp, and
 * maintenance commands — unless they call a function known to change the
 * session (set_config, the session advisory lock functions, dblink_connect).
 * Every CREATE and SELECT … INTO may create a temporary object (with
 * pg_temp first in search_path, even without TEMP): they pin until the
 * probe says otherwise.
 *
 * Not seen at all: state a user-defined function leaves behind when called
 * from a plain SELECT, and sequence state (currval / lastval after nextval).
 */
import { identifierValue, lex, TokenKind } from '../sql/lexer.js';

/** Why a client must keep its server: state the server holds for it alone. */
export type PinReason = 'listen' | 'advisory_lock' | 'temp_table' | 'hold_cursor' | 'sql_prepare' | 'role' | 'load' | 'unknown';

/** Reasons the session probe reads from the server; `load` and `unknown` it cannot see. */
export const PROBED_REASONS: readonly PinReason[] = ['listen', 'advisory_lock', 'temp_table', 'hold_cursor', 'sql_prepare', 'role'];

export interface SessionEffects {
  /** May change session settings (SET, RESET, set_config(…, false), DISCARD ALL). */
  settings: boolean;
  /** State the statement may leave on the server. */
  pins: PinReason[];
  /** State the statement may release; only the server can confirm it did. */
  releases: PinReason[];
}

export const NO_EFFECTS: SessionEffects = Object.freeze({ settings: false, pins: [], releases: [] }) as SessionEffects;

interface Piece {
  kind: TokenKind;
  /** Words and quoted identifiers folded as PostgreSQL folds them; other tokens as written. */
  text: string;
}

const HARMLESS = new Set([
  'select', 'values', 'table', 'with', 'insert', 'update', 'delete', 'merge', 'copy',
  'begin', 'start', 'commit', 'end', 'abort', 'rollback', 'savepoint', 'release',
  'show', 'explain', 'fetch', 'move', 'notify', 'lock', 'truncate', 'alter', 'comment', 'grant', 'revoke',
  'analyze', 'analyse', 'vacuum', 'cluster', 'reindex', 'refresh', 'checkpoint', 'security', 'import', 'reassign',
]);

/** Function names that may change the session, as a pattern over the text (a false match only costs the full reading). */
const SESSION_FUNCTIONS = /set_config|advisory|dblink/i;
/** Operations harmless unless they call one of those; SELECT may also create a table (SELECT … INTO). */
const PLAIN_OPERATIONS = new Map<string, RegExp>([
  ['SELECT', /set_config|advisory|dblink|into/i],
  ...['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'VALUES', 'TABLE', 'SHOW', 'FETCH', 'MOVE'].map((op): [string, RegExp] => [op, SESSION_FUNCTIONS]),
  ...['BEGIN', 'START TRANSACTION', 'COMMIT', 'ROLLBACK', 'SAVEPOINT', 'RELEASE', 'ROLLBACK TO SAVEPOINT'].map((op): [string, RegExp] => [op, /(?!)/]),
]);

const LOCKING_FUNCTIONS = new Set(['pg_advisory_lock', 'pg_advisory_lock_shared', 'pg_try_advisory_lock', 'pg_try_advisory_lock_shared']);
const UNLOCKING_FUNCTIONS = new Set(['pg_advisory_unlock', 'pg_advisory_unlock_shared', 'pg_advisory_unlock_all']);
/** Functions that open state outside anything txproxy can read. */
const OPAQUE_FUNCTIONS = new Set(['dblink_connect', 'dblink_connect_u']);
/** set_config's third argument spelled as true: a setting local to the transaction. */
const TRUE_SPELLINGS = new Set(['true', "'true'", "'t'", "'on'", "'yes'", "'y'", "'1'"]);
const ROLE_SETTINGS = new Set(['role', 'session_authorization']);

function pieces(sql: string): Piece[] {
  const out: Piece[] = [];
  lex(sql, (kind, start, end) => {
    if (kind === TokenKind.Comment) return;
    const text = kind === TokenKind.Word || kind === TokenKind.QuotedIdent ? identifierValue(sql, kind, start, end) : sql.slice(start, end);
    out.push({ kind, text });
  });
  return out;
}

function isWord(p: Piece | undefined, text: string): boolean {
  return p !== undefined && p.kind === TokenKind.Word && p.text === text;
}

class Collected {
  settings = false;
  readonly pins = new Set<PinReason>();
  readonly releases = new Set<PinReason>();
  result(): SessionEffects {
    if (!this.settings && this.pins.size === 0 && this.releases.size === 0) return NO_EFFECTS;
    return { settings: this.settings, pins: [...this.pins], releases: [...this.releases] };
  }
}

/**
 * The session effects of one statement: `text` is its text (StatementInfo.text),
 * `operation` its operation as classifyStatement names it.
 */
export function sessionEffects(text: string, operation: string): SessionEffects {
  if (operation === '') return NO_EFFECTS;
  // Most statements are plain reads and writes, run for every transaction:
  // a regular expression rules out the few words that could matter without lexing.
  const plain = PLAIN_OPERATIONS.get(operation);
  if (plain !== undefined && !plain.test(text)) return NO_EFFECTS;
  const p = pieces(text);
  const first = p[0]?.kind === TokenKind.Word ? p[0].text : '';
  const out = new Collected();
  scanFunctionCalls(p, out);
  if (operation === 'PREPARE TRANSACTION') return out.result();
  switch (first) {
    case 'set':
      setEffects(p, out);
      break;
    case 'reset':
      out.settings = true;
      if (isWord(p[1], 'all') || isWord(p[1], 'role') || isWord(p[1], 'session') || isWord(p[1], 'session_authorization')) out.releases.add('role');
      break;
    case 'discard':
      if (isWord(p[1], 'all')) {
        out.settings = true;
        for (const reason of PROBED_REASONS) out.releases.add(reason);
      } else if (isWord(p[1], 'temp') || isWord(p[1], 'temporary')) out.releases.add('temp_table');
      break;
    case 'listen':
      out.pins.add('listen');
      break;
    case 'unlisten':
      out.releases.add('listen');
      break;
    case 'declare':
      if (p.some((x, i) => isWord(x, 'hold') && isWord(p[i - 1], 'with'))) out.pins.add('hold_cursor');
      break;
    case 'close':
      out.releases.add('hold_cursor');
      break;
    case 'prepare':
      out.pins.add('sql_prepare');
      break;
    case 'deallocate':
      out.releases.add('sql_prepare');
      break;
    case 'execute':
      // Runs a statement PREPAREd earlier (already pinning), which may call set_config.
      out.settings = true;
      break;
    case 'load':
      out.pins.add('load');
      break;
    case 'create':
      // Temporary or not, as the probe will tell: with pg_temp first in
      // search_path a plain CREATE TABLE creates a temporary table.
      out.pins.add('temp_table');
      break;
    case 'drop':
      out.releases.add('temp_table');
      break;
    default:
      if (HARMLESS.has(first)) {
        if (first === 'alter' && mentionsTempSchema(p)) out.pins.add('temp_table');
        if (selectsInto(p)) out.pins.add('temp_table');
      } else {
        // CALL, DO and anything unrecognised: code that may leave any state.
        out.pins.add('unknown');
        out.settings = true;
      }
  }
  return out.result();
}

/** SET [SESSION | LOCAL] …: LOCAL and transaction-level forms end with the transaction. */
function setEffects(p: Piece[], out: Collected): void {
  let i = 1;
  if (isWord(p[i], 'local')) return;
  if (isWord(p[i], 'transaction') || isWord(p[i], 'constraints')) return;
  if (isWord(p[i], 'session')) {
    i++;
    if (isWord(p[i], 'characteristics')) {
      out.settings = true;
      return;
    }
  }
  out.settings = true;
  const name = p[i];
  if (isWord(name, 'authorization') || isWord(name, 'role') || (name !== undefined && ROLE_SETTINGS.has(name.text))) out.pins.add('role');
}

/** Calls of functions that change the session, anywhere in the statement. */
function scanFunctionCalls(p: Piece[], out: Collected): void {
  for (let i = 0; i + 1 < p.length; i++) {
    const word = p[i];
    if ((word.kind !== TokenKind.Word && word.kind !== TokenKind.QuotedIdent) || p[i + 1].kind !== TokenKind.OpenParen) continue;
    const name = word.text;
    if (LOCKING_FUNCTIONS.has(name)) out.pins.add('advisory_lock');
    else if (UNLOCKING_FUNCTIONS.has(name)) out.releases.add('advisory_lock');
    else if (OPAQUE_FUNCTIONS.has(name)) out.pins.add('unknown');
    else if (name === 'set_config') setConfigEffects(callArguments(p, i + 1), out);
  }
}

/** The tokens of each top-level argument of the call whose '(' is at `open`. */
function callArguments(p: Piece[], open: number): Piece[][] {
  const args: Piece[][] = [[]];
  let depth = 0;
  for (let i = open + 1; i < p.length; i++) {
    const x = p[i];
    if (x.kind === TokenKind.OpenParen) depth++;
    else if (x.kind === TokenKind.CloseParen) {
      if (depth === 0) break;
      depth--;
    } else if (depth === 0 && x.kind === TokenKind.Other && x.text === ',') {
      args.push([]);
      continue;
    }
    args[args.length - 1].push(x);
  }
  return args;
}

/** set_config(name, value, is_local): a session setting unless is_local is spelled true. */
function setConfigEffects(args: Piece[][], out: Collected): void {
  const local = args[2];
  if (local !== undefined && local.length === 1 && TRUE_SPELLINGS.has(local[0].kind === TokenKind.Word ? local[0].text : local[0].text.toLowerCase())) return;
  out.settings = true;
  // A name only known at run time may be role or session_authorization.
  const name = args[0];
  const literal = name?.length === 1 && name[0].kind === TokenKind.String && /^'[^']*'$/.test(name[0].text) ? name[0].text.slice(1, -1).toLowerCase() : null;
  if (literal === null || ROLE_SETTINGS.has(literal)) out.pins.add('role');
}

/** pg_temp (or a backend's own pg_temp_N) named as a schema. */
function mentionsTempSchema(p: Piece[]): boolean {
  return p.some((x) => (x.kind === TokenKind.Word || x.kind === TokenKind.QuotedIdent) && (x.text === 'pg_temp' || /^pg_temp_\d+$/.test(x.text)));
}

/** SELECT … INTO t creates a table, a temporary one with INTO TEMP or pg_temp first in search_path. */
function selectsInto(p: Piece[]): boolean {
  return isWord(p[0], 'select') && p.some((x) => isWord(x, 'into'));
}
