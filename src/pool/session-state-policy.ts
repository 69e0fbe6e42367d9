/**
 * `pool.session_state: refuse`: in transaction pooling, a statement certain
 * to leave state on its server (which would pin the client to it) is
 * refused with 0A000, naming the statement and what to use instead.
 *
 * Only what is certain is refused: a plain CREATE TABLE may or may not be
 * temporary (search_path decides), and a DO block or CALL may do anything
 * or nothing; those still pin until the server says nothing is held. A
 * temporary table dropped at commit leaves nothing either.
 */
import type { Report } from '../protocol/encode.js';
import { identifierValue, lex, TokenKind } from '../sql/lexer.js';
import { sessionEffects, type PinReason } from './session-effects.js';

export type SessionStateMode = 'pin' | 'warn' | 'refuse';

/** What each kind of state ties up, and what does the same without. */
const ALTERNATIVES: Record<Exclude<PinReason, 'unknown'>, string> = {
  listen: 'Listen on a connection of a session-mode pool (pool_mode: session for this database or user).',
  advisory_lock: 'Use pg_advisory_xact_lock inside a transaction: it is released when the transaction ends.',
  temp_table: 'Create it with ON COMMIT DROP inside a transaction, or use a session-mode pool (pool_mode: session).',
  hold_cursor: 'Declare the cursor without WITH HOLD inside a transaction.',
  sql_prepare: "Use your driver's protocol-level prepared statements: txproxy carries those from server to server.",
  role: 'Use SET LOCAL ROLE inside a transaction.',
  load: 'Load the library with session_preload_libraries for the role or database.',
};

/** The state `text` is certain to leave on its server; empty when none is certain. */
export function certainPins(text: string, operation: string): PinReason[] {
  const pins = sessionEffects(text, operation).pins.filter((reason) => reason !== 'unknown');
  if (!pins.includes('temp_table')) return pins;
  const words = wordsOf(text);
  if (declaresTemporary(words) && !droppedAtCommit(words)) return pins;
  return pins.filter((reason) => reason !== 'temp_table');
}

/** The refusal of a statement that leaves `reason` on its server. */
export function sessionStateRefusal(operation: string, reason: Exclude<PinReason, 'unknown'>): Report {
  return {
    severity: 'ERROR',
    code: '0A000',
    message: `${operation} is not allowed in transaction pooling: it would tie this client to one server connection (pool.session_state: refuse)`,
    hint: ALTERNATIVES[reason],
  };
}

/** The statement's words and keywords, folded as PostgreSQL folds them. */
function wordsOf(text: string): string[] {
  const words: string[] = [];
  lex(text, (kind, start, end) => {
    if (kind === TokenKind.Word) words.push(identifierValue(text, kind, start, end));
  });
  return words;
}

const TEMPORARY = new Set(['temp', 'temporary']);
/** What may stand between CREATE and TEMPORARY. */
const CREATE_PREFIX = new Set(['or', 'replace', 'global', 'local']);

/** CREATE [OR REPLACE] [GLOBAL | LOCAL] TEMP…, or … INTO TEMP…. */
function declaresTemporary(words: string[]): boolean {
  if (words[0] === 'create') {
    let i = 1;
    while (CREATE_PREFIX.has(words[i])) i++;
    return TEMPORARY.has(words[i]);
  }
  for (let i = 0; i + 1 < words.length; i++) {
    if (words[i] === 'into' && TEMPORARY.has(words[i + 1])) return true;
  }
  return false;
}

function droppedAtCommit(words: string[]): boolean {
  for (let i = 0; i + 2 < words.length; i++) {
    if (words[i] === 'on' && words[i + 1] === 'commit' && words[i + 2] === 'drop') return true;
  }
  return false;
}
