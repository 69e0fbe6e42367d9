/** Decoders of the policy records: decisions, and what a dry run changed. */
import { attribution, num, objects, required, sql, str, transactionIdOf, type Json } from './record-fields.js';
import type { DryRunEvent, PolicyEvent } from './record-types.js';

export function decodePolicy(r: Json): PolicyEvent {
  return {
    kind: 'policy',
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
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
    time: str(r, 'time') ?? '',
    sessionId: required(r, 'session.id', str(r, 'session.id')),
    changes: objects(r, 'changes').map((c) => ({ command: str(c, 'command') ?? '?', rows: num(c, 'rows'), statement: sql(c, 'statement') })),
    rowsTotal: num(r, 'rows_total'),
    rolledBack: r.rolled_back !== false,
    ...attribution(r),
  };
}
