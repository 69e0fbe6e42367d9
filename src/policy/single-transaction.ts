/**
 * single-transaction and dry-run: txproxy holds one transaction around the
 * whole request, and the client's own transaction control moves one level
 * down, the way Django nests atomic() inside ATOMIC_REQUESTS:
 *
 *   client                 server                                   client sees
 *   BEGIN                  SAVEPOINT txproxy_client_block           BEGIN, status T
 *   COMMIT                 RELEASE SAVEPOINT txproxy_client_block   COMMIT, status I
 *   COMMIT (block failed)  ROLLBACK TO …; RELEASE …                 ROLLBACK, status I
 *   ROLLBACK               ROLLBACK TO …; RELEASE …                 ROLLBACK, status I
 *   COMMIT / ROLLBACK      (nothing: a no-op)                       WARNING there is no
 *     outside its block                                             transaction in progress
 *
 * The client's SAVEPOINT / RELEASE / ROLLBACK TO pass unchanged, and BEGIN
 * inside its own block passes too (the server warns, as it would).
 */
import type { Report } from '../protocol/encode.js';
import type { StatementInfo } from '../sql/classify.js';
import { NOOP_SQL } from './control-sql.js';
import { PolicyErrors } from './policy-errors.js';

/** The savepoint that stands for the client's own transaction block. */
export const CLIENT_BLOCK_SAVEPOINT = 'txproxy_client_block';

/** What becomes of the server's CommandComplete for one statement txproxy sent. */
export type AnswerRewrite =
  | { kind: 'pass' }
  /** Not for the client: a second statement standing in for one of its statements. */
  | { kind: 'drop' }
  /** The tag the client's statement would have had, after an optional notice. */
  | { kind: 'retag'; tag: string; notice: Report | null };

export interface ServerStatement {
  sql: string;
  answer: AnswerRewrite;
  /** Whether the client is inside its own block once this statement completed; undefined: unchanged. */
  clientBlock?: boolean;
}

export const PASS: AnswerRewrite = { kind: 'pass' };
const DROP: AnswerRewrite = { kind: 'drop' };

const SAVEPOINT = `SAVEPOINT ${CLIENT_BLOCK_SAVEPOINT}`;
const RELEASE = `RELEASE SAVEPOINT ${CLIENT_BLOCK_SAVEPOINT}`;
const ROLLBACK_TO = `ROLLBACK TO SAVEPOINT ${CLIENT_BLOCK_SAVEPOINT}`;

/**
 * What to send for a client's transaction-control statement; null when it
 * passes unchanged.
 *
 * @param clientBlock the client is inside its own block before it
 * @param blockFailed that block is known to have failed (status E)
 */
export function planClientControl(info: StatementInfo, clientBlock: boolean, blockFailed: boolean): ServerStatement[] | null {
  switch (info.txControl) {
    case 'begin':
      if (clientBlock) return null;
      return [{ sql: SAVEPOINT, answer: retag(info.operation), clientBlock: true }];
    case 'commit':
      if (!clientBlock) return noTransaction('COMMIT');
      if (blockFailed) return rollbackBlock(info.chain);
      if (info.chain) return [{ sql: RELEASE, answer: retag('COMMIT') }, { sql: SAVEPOINT, answer: DROP }];
      return [{ sql: RELEASE, answer: retag('COMMIT'), clientBlock: false }];
    case 'rollback':
      if (!clientBlock) return noTransaction('ROLLBACK');
      return rollbackBlock(info.chain);
    default:
      return null;
  }
}

/**
 * The server statements that end the request's transaction at its clean
 * end; `commit` false: the request's outcome says roll back.
 */
export function finishSql(options: { dryRun: boolean; clientBlock: boolean; failed: boolean; commit: boolean }): string[] {
  if (options.dryRun || options.failed || !options.commit) return ['ROLLBACK'];
  // A client block still open at the end is abandoned, as the server would
  // abandon it; what the client ran outside it was acknowledged and stays.
  return options.clientBlock ? [ROLLBACK_TO, 'COMMIT'] : ['COMMIT'];
}

/** `BEGIN ISOLATION LEVEL SERIALIZABLE` → `ISOLATION LEVEL SERIALIZABLE`; null when there are none. */
export function transactionModesOf(info: StatementInfo): string | null {
  if (info.txControl !== 'begin') return null;
  const match = /^\s*(?:begin(?:\s+(?:work|transaction))?|start\s+transaction)\b([\s\S]*)$/i.exec(info.text);
  const modes = match?.[1].trim() ?? '';
  return modes === '' ? null : modes;
}

/** The statement that opens the request's transaction. */
export function beginSql(modes: string | null): string {
  return modes === null ? 'BEGIN' : `BEGIN ${modes}`;
}

function rollbackBlock(chain: boolean): ServerStatement[] {
  const steps: ServerStatement[] = [
    { sql: ROLLBACK_TO, answer: retag('ROLLBACK'), clientBlock: chain },
    { sql: RELEASE, answer: DROP },
  ];
  if (chain) steps.push({ sql: SAVEPOINT, answer: DROP });
  return steps;
}

function noTransaction(tag: string): ServerStatement[] {
  return [{ sql: NOOP_SQL, answer: { kind: 'retag', tag, notice: PolicyErrors.noTransactionInProgress() } }];
}

function retag(tag: string): AnswerRewrite {
  return { kind: 'retag', tag, notice: null };
}
