/**
 * Rewrites one client message at a time for the server link it goes to, so
 * that the client's named prepared statements work on whichever server runs
 * its transaction:
 *
 * - Parse(name): recorded for the client; nothing is sent if this server
 *   already has the same statement (txproxy answers ParseComplete), else a
 *   Parse under the server name, after the Close of what it evicts.
 * - Bind and Describe('S') of a named statement: the server name instead,
 *   after an injected Parse when this server does not have it yet (its
 *   ParseComplete swallowed).
 * - Close('S', name): forgotten for the client and answered CloseComplete by
 *   txproxy; the server copy stays cached for whoever prepares it next.
 * - Unnamed statements, portals and every other message pass untouched.
 *
 * Errors PostgreSQL would raise on names (a Parse of a name that exists, a
 * Bind of a name that does not) reach the client at their place in the
 * batch, and the server fails there too (a Describe of a name that cannot
 * exist stands in for the message), so it skips to Sync and ends a
 * transaction block in the failed state exactly as it would have.
 *
 * Use, per client: one ClientStatements, one PreparedAnswers and this
 * rewriter; per server link: one ServerStatementCache. Every client message
 * bound for the link goes through `rewrite` (send `toServer`, then
 * `toClient` to the client), every server message from it through
 * `PreparedAnswers.answer` with that link's cache. A malformed message throws
 * ProtocolDecodeError before anything is recorded.
 */
import { Frontend } from '../protocol/codes.js';
import { errorResponse, type Report } from '../protocol/encode.js';
import { serialize } from '../protocol/frontend-messages.js';
import { buildBindHeader, buildParse, buildTarget, readBind, readParse, readTarget, TARGET_STATEMENT } from './prepared-messages.js';
import {
  ENDS_BIND,
  ENDS_CLOSE,
  ENDS_CYCLE,
  ENDS_DESCRIBE,
  ENDS_EXECUTE,
  ENDS_PARSE,
  type Pending,
  type PreparedAnswers,
} from './prepared-answers.js';
import type { ClientStatements, ServerStatement, ServerStatementCache } from './prepared-statements.js';

/** What one client message becomes. */
export interface Rewritten {
  /** Bytes for the server, in order (views on the client's buffer where unchanged); empty: nothing. */
  toServer: Buffer[];
  /** Answers txproxy owes the client now (synthesized ones whose turn has come). */
  toClient: Buffer[];
}

const PARSE_COMPLETE = Buffer.from([0x31, 0, 0, 0, 4]);
const CLOSE_COMPLETE = Buffer.from([0x33, 0, 0, 0, 4]);

/**
 * A statement name no server has, so a Describe of it always fails: txproxy
 * numbers its own from 1, and SQL PREPARE truncates names to 63 bytes, so
 * it cannot create one this long.
 */
const STAND_IN_NAME = 'txproxy_no_such_statement_'.padEnd(72, '_') + '0';
/** A simple Query that always fails, with no effect in any transaction state (it names itself in the server's log). */
const STAND_IN_QUERY = serialize.query('SELECT 1/0 AS txproxy_refused_statement');

export class PreparedStatementRewriter {
  constructor(
    readonly statements: ClientStatements,
    readonly answers: PreparedAnswers,
    /** Names passed on as they are, like the unnamed statement: used and closed within one batch on one server. */
    private readonly unrenamed: ReadonlySet<string> = new Set(),
  ) {}

  /** One whole client message `buf[start, end)`, bound for the link whose cache is `cache`. */
  rewrite(cache: ServerStatementCache, buf: Buffer, start: number, end: number): Rewritten {
    const toServer: Buffer[] = [];
    switch (buf[start]) {
      case Frontend.Parse:
        this.parse(cache, buf, start, end, toServer);
        break;
      case Frontend.Bind:
        this.bind(cache, buf, start, end, toServer);
        break;
      case Frontend.Describe:
        this.describe(cache, buf, start, end, toServer);
        break;
      case Frontend.Close:
        this.close(buf, start, end, toServer);
        break;
      case Frontend.Execute:
        this.relay(buf, start, end, toServer, ENDS_EXECUTE);
        break;
      case Frontend.Sync:
        toServer.push(buf.subarray(start, end));
        this.answers.expect({ kind: 'sync', ends: ENDS_CYCLE });
        break;
      case Frontend.Query:
      case Frontend.FunctionCall:
        this.relay(buf, start, end, toServer, ENDS_CYCLE);
        break;
      default:
        // Flush, COPY data, Terminate: no answer of their own.
        toServer.push(buf.subarray(start, end));
    }
    return { toServer, toClient: this.answers.drain() };
  }

  private relay(buf: Buffer, start: number, end: number, toServer: Buffer[], ends: readonly number[], undo?: () => void): void {
    toServer.push(buf.subarray(start, end));
    this.answers.expect({ kind: 'relay', ends, undo });
  }

  private parse(cache: ServerStatementCache, buf: Buffer, start: number, end: number, toServer: Buffer[]): void {
    const { name, content } = readParse(buf, start, end);
    if (name === '' || this.unrenamed.has(name)) return this.relay(buf, start, end, toServer, ENDS_PARSE);
    if (this.statements.has(name)) {
      return this.failInPlace(toServer, { severity: 'ERROR', code: '42P05', message: `prepared statement "${name}" already exists` });
    }
    this.statements.set(name, content);
    const forget = () => this.statements.delete(name);
    const present = cache.use(content);
    if (present !== undefined && cache.status === 'E') {
      // In a failed transaction PostgreSQL refuses the Parse (unless it is ROLLBACK or COMMIT):
      // the server must judge it. The unnamed statement takes it, the server copy stays.
      toServer.push(buildParse('', content));
      this.answers.expect({ kind: 'relay', ends: ENDS_PARSE, undo: forget });
      return;
    }
    if (present !== undefined) {
      this.answers.expect({ kind: 'synthesize', ends: [], answer: PARSE_COMPLETE, undo: forget });
      return;
    }
    const statement = this.addToServer(cache, content, toServer);
    toServer.push(buildParse(statement.serverName, content));
    this.answers.expect({
      kind: 'relay',
      ends: ENDS_PARSE,
      undo: () => {
        cache.remove(statement);
        forget();
      },
    });
  }

  private bind(cache: ServerStatementCache, buf: Buffer, start: number, end: number, toServer: Buffer[]): void {
    const { portal, statement: name, rest } = readBind(buf, start, end);
    if (name === '' || this.unrenamed.has(name)) return this.relay(buf, start, end, toServer, ENDS_BIND);
    const content = this.statements.get(name);
    if (content === undefined) return this.failMissing(toServer, name);
    const statement = this.prepared(cache, content, toServer);
    toServer.push(buildBindHeader(portal, statement.serverName, rest.length), rest);
    this.answers.expect({ kind: 'relay', ends: ENDS_BIND });
  }

  private describe(cache: ServerStatementCache, buf: Buffer, start: number, end: number, toServer: Buffer[]): void {
    const { target, name } = readTarget(buf, start, end);
    if (target !== TARGET_STATEMENT || name === '' || this.unrenamed.has(name)) return this.relay(buf, start, end, toServer, ENDS_DESCRIBE);
    const content = this.statements.get(name);
    if (content === undefined) return this.failMissing(toServer, name);
    const statement = this.prepared(cache, content, toServer);
    toServer.push(buildTarget(Frontend.Describe, TARGET_STATEMENT, statement.serverName));
    this.answers.expect({ kind: 'relay', ends: ENDS_DESCRIBE });
  }

  /**
   * Close of a named statement never reaches the server: other clients may
   * use the server copy, and the cache evicts it in its time. Closing a name
   * that does not exist is no error in PostgreSQL either.
   */
  private close(buf: Buffer, start: number, end: number, toServer: Buffer[]): void {
    const { target, name } = readTarget(buf, start, end);
    if (target !== TARGET_STATEMENT || name === '' || this.unrenamed.has(name)) return this.relay(buf, start, end, toServer, ENDS_CLOSE);
    const content = this.statements.get(name);
    this.statements.delete(name);
    const restore = content === undefined ? undefined : () => this.statements.set(name, content);
    this.answers.expect({ kind: 'synthesize', ends: [], answer: CLOSE_COMPLETE, undo: restore });
  }

  /** The server statement for `content` on this link, with an injected Parse if it has none yet. */
  private prepared(cache: ServerStatementCache, content: Buffer, toServer: Buffer[]): ServerStatement {
    const present = cache.use(content);
    if (present !== undefined) return present;
    const statement = this.addToServer(cache, content, toServer);
    toServer.push(buildParse(statement.serverName, content));
    this.answers.expect({ kind: 'swallow', ends: ENDS_PARSE, undo: () => cache.remove(statement) });
    return statement;
  }

  /** Adds `content` to the cache and sends the Close of what that evicts (answers swallowed). */
  private addToServer(cache: ServerStatementCache, content: Buffer, toServer: Buffer[]): ServerStatement {
    const { statement, toClose } = cache.add(content);
    for (const serverName of toClose) {
      toServer.push(buildTarget(Frontend.Close, TARGET_STATEMENT, serverName));
      this.answers.expect({ kind: 'swallow', ends: ENDS_CLOSE, undo: () => cache.closeSkipped(serverName) });
    }
    return statement;
  }

  /**
   * Refuses one client message (a Query or a Parse) with `report`: the
   * client gets it where the server's answer would be, and the server fails
   * in the same place, so a transaction block ends up failed as it would
   * have had the server refused it.
   */
  refuse(buf: Buffer, start: number, report: Report): Rewritten {
    const toServer: Buffer[] = [];
    if (buf[start] === Frontend.Query) {
      toServer.push(STAND_IN_QUERY);
      this.answers.expect({ kind: 'replace-error', ends: ENDS_CYCLE, answer: errorResponse(report) });
    } else {
      this.failInPlace(toServer, report);
    }
    return { toServer, toClient: this.answers.drain() };
  }

  private failMissing(toServer: Buffer[], name: string): void {
    this.failInPlace(toServer, { severity: 'ERROR', code: '26000', message: `prepared statement "${name}" does not exist` });
  }

  /**
   * The client gets this error at this message's place; the server gets a
   * Describe that fails, so it skips to Sync as it would have for the
   * client's own message. The name errors (42P05, 26000) are PostgreSQL's
   * own, word for word and with no hint of txproxy's: the client must not
   * tell them from the server's.
   */
  private failInPlace(toServer: Buffer[], report: Report): void {
    toServer.push(buildTarget(Frontend.Describe, TARGET_STATEMENT, STAND_IN_NAME));
    const entry: Pending = { kind: 'replace-error', ends: ENDS_DESCRIBE, answer: errorResponse(report) };
    this.answers.expect(entry);
  }
}
