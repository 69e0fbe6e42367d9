/** Decoders of the policy records: decisions, and what a dry run changed. */
import { attribution, num, objects, required, sessionIdOf, sql, str, timeOf, transactionIdOf, type Json } from './record-fields.js';
import type { DryRunEvent, PolicyEvent } from './record-types.js';

export function decodePolicy(r: Json): PolicyEvent {
  return {
    kind: 'policy',
    time: timeOf(r),
    sessionId: sessionIdOf(r),
    transactionId: transactionIdOf(r),
    rule: required(r, 'rule', str(r, 'rule')),
    mode: str(r, 'mode'),
    action: str(r, 'action'),
    decision: required(r, 'decision', str(r, 'decision')),
    sqlstate: str(r, 'sqlstate'),
    message: str(r, 'message') ?? '',
    text: sql(r, 'db.query.text'),
    ...attribution(r),
  };
}

export function decodeDryRun(r: Json): DryRunEvent {
  return {
    kind: 'dry_run',
    time: timeOf(r),
    sessionId: sessionIdOf(r),
    changes: objects(r, 'changes').map((c) => ({ command: str(c, 'command') ?? '?', rows: num(c, 'rows'), statement: sql(c, 'statement') })),
    rowsTotal: num(r, 'rows_total'),
    rolledBack: r.rolled_back !== false,
    ...attribution(r),
  };
}
