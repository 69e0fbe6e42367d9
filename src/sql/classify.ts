/**
 * Names what a SQL statement is, from its leading keywords: the operation
 * (`db.operation.name`), whether it controls the transaction (and which
 * savepoint it names), whether it writes, whether it takes row locks.
 *
 * This only *names* things. The transaction state itself always comes from
 * the server (ReadyForQuery and command tags); a statement this module
 * misjudges can mislabel a trace, never corrupt the state.
 */
import { keywordAt } from './keywords.js';
import { identifierValue, lex, TokenKind } from './lexer.js';

export type TxControl =
  | 'begin'
  | 'commit'
  | 'rollback'
  | 'savepoint'
  | 'release'
  | 'rollback_to'
  | 'prepare_transaction';

export interface StatementInfo {
  /**
   * The statement's own text, from its first token to its last (comments
   * inside it included), without the separating semicolon: what txproxy
   * sends on the client's behalf when it rewrites a Query.
   */
  text: string;
  /**
   * The statement as the client sent it, for traces: its text with the
   * comments before and after it, white space around trimmed. Comments
   * after the last statement's semicolon are its own (the text then ends
   * with `; -- …`), as are comments between two semicolons with no
   * statement in between.
   */
  sentText: string;
  /** Upper-case operation, e.g. `SELECT`, `INSERT`, `CREATE TABLE`, `ROLLBACK TO SAVEPOINT`; `` for an empty query. */
  operation: string;
  txControl: TxControl | null;
  /** The savepoint named by SAVEPOINT / RELEASE / ROLLBACK TO, folded as PostgreSQL folds it. */
  savepoint: string | null;
  /** COMMIT AND CHAIN / ROLLBACK AND CHAIN start a new transaction at once. */
  chain: boolean;
  /** Changes data or schema (DML, DDL, COPY FROM, SELECT INTO, EXPLAIN ANALYZE of a write). */
  write: boolean;
  /** Takes row locks: SELECT … FOR UPDATE / NO KEY UPDATE / SHARE / KEY SHARE. */
  lockingRead: boolean;
  /** Cannot run inside a transaction block (VACUUM, CREATE DATABASE, … CONCURRENTLY). */
  nonTransactional: boolean;
  /**
   * How plain '…' strings were read: as standard SQL (the session's
   * standard_conforming_strings on) or with backslash escapes (off). A text
   * without a backslash reads the same either way and may say true.
   */
  standardConformingStrings: boolean;
}

interface Word {
  /** The keyword it is (upper case), or '' for any other word: see keywords.ts. */
  upper: string;
  kind: TokenKind;
  start: number;
  end: number;
  depth: number;
}

const DML = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'TRUNCATE']);
const DDL = new Set([
  'CREATE',
  'ALTER',
  'DROP',
  'COMMENT',
  'GRANT',
  'REVOKE',
  'REINDEX',
  'CLUSTER',
  'REFRESH',
  'SECURITY',
  'IMPORT',
]);
/** Object types that make up the operation name of CREATE/ALTER/DROP. */
const TWO_WORD_OBJECTS = new Set([
  'TABLE',
  'INDEX',
  'VIEW',
  'SEQUENCE',
  'SCHEMA',
  'FUNCTION',
  'PROCEDURE',
  'TRIGGER',
  'TYPE',
  'DATABASE',
  'ROLE',
  'USER',
  'EXTENSION',
  'DOMAIN',
  'POLICY',
  'PUBLICATION',
  'SUBSCRIPTION',
  'TABLESPACE',
  'SYSTEM',
  'RULE',
  'AGGREGATE',
  'COLLATION',
  'SERVER',
]);

/** NAMEDATALEN - 1: no command word is longer, and the operation is in every record of the statement. */
const MAX_OPERATION_WORD = 63;

let hadLiterals = false;

/** Whether the text last given to splitStatements held string or number literals. */
export function lastSplitHadLiterals(): boolean {
  return hadLiterals;
}

/**
 * Splits a simple-protocol Query into statements, as the server will run
 * them; `standardConformingStrings` is the session's setting (lexer.ts).
 */
export function splitStatements(sql: string, standardConformingStrings = true): StatementInfo[] {
  hadLiterals = false;
  const statements: StatementInfo[] = [];
  let words: Word[] = [];
  let stmtStart = -1;
  let stmtEnd = 0;
  /** Where the statement's text as sent starts and ends: comments before and after it included. */
  let sentStart = -1;
  let sentEnd = 0;
  let lastSentStart = -1;
  let depth = 0;
  /** Open BEGIN … END blocks of a routine body (BEGIN ATOMIC), whose semicolons do not end the statement. */
  let blockDepth = 0;
  const finishStatement = (): void => {
    const info = describe(sql, sql.slice(stmtStart, stmtEnd), words, standardConformingStrings);
    info.sentText = sql.slice(sentStart, sentEnd);
    statements.push(info);
    lastSentStart = sentStart;
  };
  /** Comments with no statement after them (before the next semicolon or the end) go to the statement before. */
  const commentsToLast = (): boolean => {
    if (statements.length === 0) return false;
    statements[statements.length - 1].sentText = sql.slice(lastSentStart, sentEnd);
    return true;
  };
  lex(sql, (kind, start, end) => {
    if (kind === TokenKind.Comment) {
      if (sentStart < 0) sentStart = start;
      sentEnd = end;
      return;
    }
    if (kind === TokenKind.String || kind === TokenKind.Number) hadLiterals = true;
    if (kind === TokenKind.Semicolon && depth === 0 && blockDepth === 0) {
      if (stmtStart >= 0) {
        finishStatement();
        sentStart = -1;
      } else if (sentStart >= 0 && commentsToLast()) sentStart = -1;
      // (Comments before the first statement stay with it, semicolon and all.)
      words = [];
      stmtStart = -1;
      return;
    }
    if (stmtStart < 0) stmtStart = start;
    if (sentStart < 0) sentStart = start;
    stmtEnd = end;
    sentEnd = end;
    if (kind === TokenKind.OpenParen) depth++;
    else if (kind === TokenKind.CloseParen) depth = Math.max(0, depth - 1);
    else if (kind === TokenKind.Word || kind === TokenKind.QuotedIdent) {
      const upper = kind === TokenKind.Word ? keywordAt(sql, start, end) : '';
      words.push({ upper, kind, start, end, depth });
      if (depth === 0 && kind === TokenKind.Word && isRoutineDefinition(words)) blockDepth = routineBlockDepth(blockDepth, upper);
    }
  }, standardConformingStrings);
  if (stmtStart >= 0) finishStatement();
  else if (sentStart >= 0) commentsToLast();
  // A Query with nothing but whitespace and comments gets one EmptyQueryResponse.
  if (statements.length === 0) statements.push(emptyStatement(sql, standardConformingStrings));
  return statements;
}

/**
 * CREATE [OR REPLACE] FUNCTION | PROCEDURE: its SQL-standard body
 * (`BEGIN ATOMIC stmt; stmt; END`) holds semicolons. psql's own scanner
 * (psqlscan.l) tracks it the same way, and psql sends such a definition
 * as one Query.
 */
function isRoutineDefinition(words: Word[]): boolean {
  if (words[0].upper !== 'CREATE' || words.length < 2) return false;
  const second = words[1].upper;
  if (second === 'FUNCTION' || second === 'PROCEDURE') return true;
  if (second !== 'OR' || words.length < 4 || words[2].upper !== 'REPLACE') return false;
  const fourth = words[3].upper;
  return fourth === 'FUNCTION' || fourth === 'PROCEDURE';
}

/** BEGIN opens a block, END closes one; CASE also ends with END, so inside a block it opens one too. */
function routineBlockDepth(blockDepth: number, upper: string): number {
  if (upper === 'BEGIN') return blockDepth + 1;
  if (upper === 'CASE') return blockDepth > 0 ? blockDepth + 1 : blockDepth;
  if (upper === 'END') return blockDepth > 0 ? blockDepth - 1 : blockDepth;
  return blockDepth;
}

/** Classifies one statement, e.g. the text of an extended-protocol Parse. */
export function classifyStatement(sql: string, standardConformingStrings = true): StatementInfo {
  const all = splitStatements(sql, standardConformingStrings);
  if (all.length === 1) return all[0];
  // The server refuses several statements in one Parse; describe the first.
  return { ...all[0], text: sql.trim(), sentText: sql.trim() };
}

function emptyStatement(text: string, standardConformingStrings: boolean): StatementInfo {
  return {
    text,
    sentText: text,
    operation: '',
    txControl: null,
    savepoint: null,
    chain: false,
    write: false,
    lockingRead: false,
    nonTransactional: false,
    standardConformingStrings,
  };
}

function describe(sql: string, text: string, words: Word[], standardConformingStrings: boolean): StatementInfo {
  const info = emptyStatement(text, standardConformingStrings);
  // No statement starts with anything but a word: a text that does is an
  // error, and its first token may be a literal that no trace may show.
  if (words.length === 0 || words[0].kind !== TokenKind.Word) return info;
  const w = (i: number): string => words[i]?.upper ?? '';
  const first = w(0);
  // Not a keyword we look for (SET, SHOW, CALL, …): named by its own text,
  // as long as a name can be (PostgreSQL truncates identifiers to 63 bytes).
  info.operation = first !== '' ? first : sql.slice(words[0].start, Math.min(words[0].end, words[0].start + MAX_OPERATION_WORD)).toUpperCase();
  switch (first) {
    case 'BEGIN':
    case 'START':
      if (first === 'START' && w(1) !== 'TRANSACTION') break;
      info.operation = first === 'START' ? 'START TRANSACTION' : 'BEGIN';
      info.txControl = 'begin';
      return info;
    case 'COMMIT':
    case 'END':
      if (w(1) === 'PREPARED') {
        info.operation = 'COMMIT PREPARED';
        info.nonTransactional = true;
        return info;
      }
      info.operation = 'COMMIT';
      info.txControl = 'commit';
      info.chain = hasChain(words);
      return info;
    case 'ABORT':
    case 'ROLLBACK': {
      if (w(1) === 'PREPARED') {
        info.operation = 'ROLLBACK PREPARED';
        info.nonTransactional = true;
        return info;
      }
      let i = 1;
      if (w(i) === 'WORK' || w(i) === 'TRANSACTION') i++;
      if (w(i) === 'TO') {
        i++;
        if (w(i) === 'SAVEPOINT') i++;
        info.operation = 'ROLLBACK TO SAVEPOINT';
        info.txControl = 'rollback_to';
        info.savepoint = nameAt(sql, words, i);
        return info;
      }
      info.operation = 'ROLLBACK';
      info.txControl = 'rollback';
      info.chain = hasChain(words);
      return info;
    }
    case 'SAVEPOINT':
      info.txControl = 'savepoint';
      info.savepoint = nameAt(sql, words, 1);
      return info;
    case 'RELEASE': {
      const i = w(1) === 'SAVEPOINT' ? 2 : 1;
      info.operation = 'RELEASE SAVEPOINT';
      info.txControl = 'release';
      info.savepoint = nameAt(sql, words, i);
      return info;
    }
    case 'PREPARE':
      if (w(1) === 'TRANSACTION') {
        info.operation = 'PREPARE TRANSACTION';
        info.txControl = 'prepare_transaction';
      }
      return info;
    case 'SELECT':
    case 'VALUES':
    case 'TABLE':
      info.lockingRead = hasLockingClause(words);
      // SELECT … INTO new_table creates a table.
      info.write = first === 'SELECT' && words.some((x) => x.depth === 0 && x.upper === 'INTO');
      return info;
    case 'WITH':
      return describeWith(info, words);
    case 'COPY':
      // COPY … FROM loads rows; COPY … TO only reads.
      info.write = words.some((x) => x.depth === 0 && x.upper === 'FROM') && !words.some((x) => x.depth === 0 && x.upper === 'TO');
      return info;
    case 'EXPLAIN':
      return describeExplain(sql, info, words);
    case 'VACUUM':
      info.nonTransactional = true;
      return info;
    case 'LOCK':
      info.operation = 'LOCK TABLE';
      return info;
  }
  if (DML.has(first)) {
    info.write = true;
    return info;
  }
  if (DDL.has(first)) {
    info.write = true;
    const second = w(1);
    if (first === 'CREATE' || first === 'ALTER' || first === 'DROP') {
      // CREATE UNIQUE INDEX, CREATE OR REPLACE FUNCTION, CREATE TEMP TABLE…
      const object = words.slice(1, 5).find((x) => TWO_WORD_OBJECTS.has(x.upper))?.upper;
      if (object) info.operation = `${first} ${object}`;
      const concurrently = words.slice(1, 5).some((x) => x.upper === 'CONCURRENTLY');
      info.nonTransactional =
        concurrently ||
        ((first === 'CREATE' || first === 'DROP') && (object === 'DATABASE' || object === 'TABLESPACE')) ||
        (first === 'ALTER' && second === 'SYSTEM');
    } else if (first === 'REINDEX') {
      info.nonTransactional = words.some((x) => x.upper === 'CONCURRENTLY') || second === 'DATABASE' || second === 'SYSTEM';
    } else if (first === 'CLUSTER') {
      info.nonTransactional = words.length === 1 || (words.length === 2 && second === 'VERBOSE');
    }
    return info;
  }
  return info;
}

function nameAt(sql: string, words: Word[], i: number): string | null {
  const word = words[i];
  if (word === undefined) return null;
  return identifierValue(sql, word.kind, word.start, word.end);
}

function hasChain(words: Word[]): boolean {
  const n = words.length;
  return n >= 2 && words[n - 1].upper === 'CHAIN' && words[n - 2].upper === 'AND';
}

/** FOR UPDATE | FOR NO KEY UPDATE | FOR SHARE | FOR KEY SHARE, at any depth. */
function hasLockingClause(words: Word[]): boolean {
  for (let i = 0; i + 1 < words.length; i++) {
    if (words[i].upper !== 'FOR') continue;
    const next = words[i + 1].upper;
    if (next === 'UPDATE' || next === 'SHARE' || next === 'NO' || next === 'KEY') return true;
  }
  return false;
}

/** WITH …: the main statement decides the operation; any data-modifying CTE makes it a write. */
function describeWith(info: StatementInfo, words: Word[]): StatementInfo {
  const main = words.find((x, i) => i > 0 && x.depth === 0 && (x.upper === 'SELECT' || DML.has(x.upper) || x.upper === 'VALUES'));
  info.operation = main?.upper ?? 'WITH';
  for (let i = 1; i < words.length; i++) {
    const u = words[i].upper;
    if (u === 'INSERT' || u === 'DELETE' || u === 'MERGE') info.write = true;
    // UPDATE is a write unless it is FOR [NO KEY] UPDATE or ON CONFLICT DO UPDATE (inside an INSERT anyway).
    if (u === 'UPDATE' && words[i - 1].upper !== 'FOR' && words[i - 1].upper !== 'KEY' && words[i - 1].upper !== 'DO') {
      info.write = true;
    }
  }
  info.lockingRead = hasLockingClause(words);
  return info;
}

/** EXPLAIN ANALYZE runs the statement: it writes when the statement does. */
function describeExplain(sql: string, info: StatementInfo, words: Word[]): StatementInfo {
  const analyze = words.some((x) => x.upper === 'ANALYZE' || x.upper === 'ANALYSE');
  if (!analyze) return info;
  const inner = words.find((x) => x.depth === 0 && (x.upper === 'SELECT' || x.upper === 'WITH' || DML.has(x.upper)));
  if (inner === undefined) return info;
  const innerInfo = classifyStatement(sql.slice(inner.start), info.standardConformingStrings);
  // The inner split reset the literal flag: do not let this text be cached on its word.
  hadLiterals = true;
  info.write = innerInfo.write;
  info.lockingRead = innerInfo.lockingRead;
  return info;
}
