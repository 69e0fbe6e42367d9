/**
 * The messages txproxy sends on a session besides the client's: its own
 * control statements (BEGIN, COMMIT, ROLLBACK, savepoints, refusals), and
 * how the answers to each message are to be treated.
 *
 * In the extended protocol they use a prepared statement and a portal of
 * txproxy's own name, never the unnamed ones: the client may have bound the
 * unnamed portal already and be about to execute it. Both are closed first
 * (a leftover from a sequence an error cut short would make Parse fail)
 * and after.
 */
import type { RefusalStatement } from '../policy/control-sql.js';
import type { ServerStatement } from '../policy/single-transaction.js';
import type { Report } from '../protocol/encode.js';
import type { StatementInfo } from '../sql/classify.js';
import { serialize } from '../protocol/frontend-messages.js';
import type { Entry } from '../tracker/session-tracker.js';
import type { DecisionEvent } from './enforcer-ports.js';
import type { RequestTransaction } from './request-transaction.js';

export const CONTROL_NAME = 'txproxy_control';

const CLOSE_PORTAL = serialize.close({ type: 'P', name: CONTROL_NAME });
const CLOSE_STATEMENT = serialize.close({ type: 'S', name: CONTROL_NAME });
const BIND = serialize.bind({ portal: CONTROL_NAME, statement: CONTROL_NAME });
const EXECUTE = serialize.execute({ portal: CONTROL_NAME });
const SYNC = serialize.sync();

/** How to treat the answers to one message sent. */
export interface AnswerPlan {
  /** Per statement sent, in order (empty: pass everything). */
  steps: ServerStatement[];
  cursor: number;
  /** The message stands for a refused statement: the server's error is replaced by this report. */
  refusal: { statement: RefusalStatement; report: Report } | null;
  /** A statement of txproxy's own that opens or ends the request's transaction. */
  control: { kind: 'open' | 'finish' | 'abort'; transaction: RequestTransaction } | null;
}

export function answerPlan(fields: Partial<AnswerPlan>): AnswerPlan {
  return { steps: [], cursor: 0, refusal: null, control: null, ...fields };
}

/** Who sent a statement txproxy put in place of the client's (StatementRecord.origin). */
export interface StatementOrigin {
  origin: 'proxy' | 'rewritten';
  clientText?: string;
}

/** A decision on the statement at `index` of a message, recorded once that statement starts. */
export interface PendingDecision {
  index: number;
  event: DecisionEvent;
}

/** One message to send and how the tracker records it. */
export interface Outgoing {
  message: Buffer;
  /** Its answers are not for the client; its statements are txproxy's own. */
  hidden: boolean;
  plan: AnswerPlan | null;
  /** Records it differently from its bytes (a refusal stands for the client's statement). */
  track?: () => Entry | null;
  /** Per statement of the message: who sent it, when not the client as it wrote it. */
  origins?: (StatementOrigin | null)[];
  decisions?: PendingDecision[];
}

/**
 * Where control statements go: into a simple Query, into an extended batch
 * of their own (nothing of the client's batch sent yet), or into the
 * client's open batch (no Sync of ours).
 */
export type Form = 'simple' | 'batch' | 'mid';

/** One statement through the control statement and portal; `execute` is the message the server answers with its result. */
export interface ControlSequence {
  prepare: Buffer[];
  execute: Buffer;
  cleanup: Buffer[];
}

export function controlSequence(sql: string): ControlSequence {
  return {
    prepare: [CLOSE_PORTAL, CLOSE_STATEMENT, serialize.parse({ name: CONTROL_NAME, text: sql }), BIND],
    execute: EXECUTE,
    cleanup: [CLOSE_PORTAL, CLOSE_STATEMENT],
  };
}

/** Control statements in the given form, all hidden from the client; `plan` is given to each statement's answer. */
export function controlMessages(form: Form, sqls: string[], plan: () => AnswerPlan): Outgoing[] {
  if (form === 'simple') return [{ message: serialize.query(sqls.join('; ')), hidden: true, plan: plan() }];
  const out: Outgoing[] = [];
  for (const sql of sqls) {
    const sequence = controlSequence(sql);
    for (const message of sequence.prepare) out.push({ message, hidden: true, plan: null });
    out.push({ message: sequence.execute, hidden: true, plan: plan() });
    for (const message of sequence.cleanup) out.push({ message, hidden: true, plan: null });
  }
  if (form === 'batch') out.push({ message: SYNC, hidden: true, plan: null });
  return out;
}

/** Who sent a step txproxy put in place of a client's statement. */
export function originOf(step: ServerStatement, info: StatementInfo): StatementOrigin {
  return step.answer.kind === 'drop' ? { origin: 'proxy' } : { origin: 'rewritten', clientText: info.text };
}

/** Marks the statements of a message txproxy sent in the tracker's records (docs/traces.md, Policies). */
export function markOrigins(entry: Entry, item: Outgoing): void {
  const statements = entry.statements;
  for (let i = 0; i < statements.length; i++) {
    const origin = item.hidden ? PROXY : item.origins?.[i];
    if (origin === undefined || origin === null) continue;
    statements[i].origin = origin.origin;
    if (origin.clientText !== undefined) statements[i].clientText = origin.clientText;
  }
}

const PROXY: StatementOrigin = { origin: 'proxy' };

export function queryMessage(sql: string): Buffer {
  return serialize.query(sql);
}
