/**
 * What the transcript points out about a transaction block, computed from
 * its records alone: the savepoint tree (how deep each statement ran, what
 * a ROLLBACK TO undid) and whether an explicit transaction needed to be one.
 *
 * The tree comes from `pg.savepoint_depth` (savepoints open after each
 * statement, as the server's answers moved them), so it needs no savepoint
 * names and works with `trace.sql: off`.
 */
import { classifyStatement } from '../sql/classify.js';
import type { StatementEvent } from './record-types.js';
import type { TransactionBlock } from './transcript.js';

export interface StatementPlace {
  /** Savepoint levels drawn before the statement's SQL. */
  indent: number;
  /** Seq of the ROLLBACK TO SAVEPOINT that undid this statement, or null. */
  rolledBackBy: number | null;
  /** For a rolled-back statement: the first level that was rewound (levels from it on are drawn as undone). */
  rolledBackLevel: number;
  /** For a ROLLBACK TO SAVEPOINT: the seqs it undid. */
  undid: number[];
}

/**
 * Places each statement in the savepoint tree. SAVEPOINT x is drawn at the
 * level it opens from and the statements inside one level deeper; RELEASE x
 * and ROLLBACK TO x are drawn at x's own level, like the SAVEPOINT they
 * close or rewind. ROLLBACK TO x undoes everything since x was set (or
 * since the last ROLLBACK TO x); x itself stays open.
 */
export function savepointTree(statements: readonly StatementEvent[]): StatementPlace[] {
  const places: StatementPlace[] = [];
  /** Level → index of the statement that last (re)established it. */
  const established = new Map<number, number>();
  statements.forEach((s, i) => {
    const depth = Math.max(0, s.savepointDepth);
    const succeeded = s.sqlstate === null && !s.interrupted;
    const place: StatementPlace = { indent: depth, rolledBackBy: null, rolledBackLevel: 0, undid: [] };
    if (succeeded && s.operation === 'SAVEPOINT' && depth > 0) {
      place.indent = depth - 1;
      established.set(depth, i);
    } else if (succeeded && s.operation === 'ROLLBACK TO SAVEPOINT' && depth > 0) {
      place.indent = depth - 1;
      const from = established.get(depth);
      if (from !== undefined) {
        for (let j = from + 1; j < i; j++) {
          if (places[j].rolledBackBy !== null) continue;
          places[j].rolledBackBy = s.seq;
          places[j].rolledBackLevel = depth;
          place.undid.push(statements[j].seq);
        }
      }
      established.set(depth, i);
    }
    // RELEASE x: the depth after it is x's own level, where x was set.
    places.push(place);
  });
  return places;
}

const TRANSACTION_CONTROL = new Set([
  'BEGIN',
  'START TRANSACTION',
  'COMMIT',
  'ROLLBACK',
  'SAVEPOINT',
  'RELEASE SAVEPOINT',
  'ROLLBACK TO SAVEPOINT',
]);

/** Reads that behave the same in autocommit at READ COMMITTED. */
const PLAIN_READS = new Set(['SELECT', 'VALUES', 'TABLE', 'SHOW', 'EXPLAIN']);

/** Isolation levels under which a read-only transaction does buy something: one snapshot. */
const SNAPSHOT_ISOLATION = /\b(REPEATABLE\s+READ|SERIALIZABLE)\b/i;

/**
 * An explicit transaction whose statements were all plain reads (no writes,
 * no row locks, no cursors, no SET LOCAL, not REPEATABLE READ or
 * SERIALIZABLE) did not need BEGIN … COMMIT: returns how many reads it ran,
 * or null when it needed one or the trace cannot tell (SQL not traced,
 * statements missing from the trace).
 */
export function needlessReadOnly(block: TransactionBlock): number | null {
  const tx = block.tx;
  if (tx === null || tx.implicit || tx.writes > 0 || tx.outcome === 'prepared') return null;
  if (block.statements.length < tx.statements) return null;
  let reads = 0;
  for (const s of block.statements) {
    if (s.text === null) return null;
    if (TRANSACTION_CONTROL.has(s.operation)) {
      if (SNAPSHOT_ISOLATION.test(s.text)) return null;
      continue;
    }
    const info = classifyStatement(s.text);
    if (!PLAIN_READS.has(info.operation) || info.write || info.lockingRead) return null;
    reads++;
  }
  return reads;
}
