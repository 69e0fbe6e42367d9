/**
 * The layer between a session in transaction pooling and whichever server
 * link it holds: named prepared statements are renamed for that link (and
 * prepared on it when it lacks them), and the link's answers are turned
 * back into what one server of the client's own would have answered.
 *
 * Everything above it (the tracker, the policies) sees the client's names
 * and a server that answers every message, so it sits below them: client
 * messages go through it after the policies decided what to send, server
 * messages before the tracker reads them.
 */
import { CONTROL_NAME } from '../enforcement/control-messages.js';
import type { Report } from '../protocol/encode.js';
import { DROP, FORWARD, type Verdict } from '../protocol/message-scanner.js';
import { ENDS_CYCLE, PreparedAnswers, type Pending } from '../pool/prepared-answers.js';
import { Frontend } from '../protocol/codes.js';
import { PreparedStatementRewriter } from '../pool/prepared-rewriter.js';
import { ClientStatements, type ServerStatementCache } from '../pool/prepared-statements.js';

/** What a simple Query expects: relayed answers up to its ReadyForQuery (shared: entries are only read). */
const QUERY_ANSWERED: Pending = { kind: 'relay', ends: ENDS_CYCLE };

export class RenamedStatements {
  private readonly statements = new ClientStatements();
  private readonly answers = new PreparedAnswers();
  // The policies' own statement is prepared, run and closed in one batch (control-messages.ts): it keeps its name.
  private readonly rewriter = new PreparedStatementRewriter(this.statements, this.answers, new Set([CONTROL_NAME]));

  constructor() {
    // DISCARD ALL or DEALLOCATE ALL ran: the client has no statement left either.
    this.answers.onDeallocateAll = () => this.statements.clear();
  }

  /** Answers still owed for messages sent: the link cannot go back before they came. */
  get pending(): number {
    return this.answers.pending;
  }

  /**
   * What the session decided to send for one client message (`verdict`: the
   * message itself, nothing, or txproxy's own messages in its place), as
   * bytes for the link whose statements are `cache`. Answers txproxy gives
   * itself in the server's stead go to `answered`, in order.
   */
  toServer(cache: ServerStatementCache, verdict: Verdict, buf: Buffer, start: number, end: number, answered: (answer: Buffer) => void): Verdict {
    if (verdict === null) return DROP;
    if (verdict === undefined && buf[start] === Frontend.Query && this.answers.pending === 0) {
      // A simple Query with nothing in flight, the usual one: sent as it is, answered as it is.
      this.answers.expect(QUERY_ANSWERED);
      return FORWARD;
    }
    if (verdict === undefined) {
      const { toServer, toClient } = this.rewriter.rewrite(cache, buf, start, end);
      for (const answer of toClient) answered(answer);
      if (toServer.length === 1 && isView(toServer[0], buf, start, end)) return FORWARD;
      return toServer.length === 0 ? DROP : Buffer.concat(toServer);
    }
    const out: Buffer[] = [];
    for (let at = 0; at < verdict.length; ) {
      // The last message may be only the head of the client's own (its rest streams behind).
      const next = Math.min(at + 1 + verdict.readInt32BE(at + 1), verdict.length);
      const { toServer, toClient } = this.rewriter.rewrite(cache, verdict, at, next);
      out.push(...toServer);
      for (const answer of toClient) answered(answer);
      at = next;
    }
    return Buffer.concat(out);
  }

  /** Refuses one client message (a Query or a Parse) with `report`, in its place (see PreparedStatementRewriter.refuse). */
  refuse(buf: Buffer, start: number, report: Report, answered: (answer: Buffer) => void): Verdict {
    const { toServer, toClient } = this.rewriter.refuse(buf, start, report);
    for (const answer of toClient) answered(answer);
    return Buffer.concat(toServer);
  }

  /**
   * One server message from the link whose statements are `cache`: the
   * messages the session sees in its place, in order (the message itself
   * among them as a view of `buf`, or not at all); null for the message
   * itself alone.
   */
  fromServer(cache: ServerStatementCache, buf: Buffer, start: number, end: number): Buffer[] | null {
    return this.answers.answer(cache, buf, start, end);
  }
}

/** Whether `chunk` is exactly `buf[start, end)`, not a copy. */
export function isView(chunk: Buffer, buf: Buffer, start: number, end: number): boolean {
  return chunk.buffer === buf.buffer && chunk.byteOffset === buf.byteOffset + start && chunk.length === end - start;
}
