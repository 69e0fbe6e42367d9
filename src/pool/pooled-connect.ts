/**
 * How a pooled client session gets its server: txproxy logs the client in
 * itself, borrows a logged-in server connection of the client's (database,
 * user) pool, gives it the client's startup parameters, and then answers the
 * client exactly as a fresh backend would after AuthenticationOk: a
 * ParameterStatus for each reported parameter, BackendKeyData, and
 * ReadyForQuery.
 *
 * BackendKeyData carries the real backend pid (so `pg_terminate_backend(pid)`
 * and pg_stat_activity mean what the client thinks) with a secret txproxy
 * mints, so a client can only ever cancel through txproxy, which sends the
 * server its own key for the connection the client holds at that moment.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { AuthMethod, ServerCredentials } from '../auth/client-authenticator.js';
import type { Secret } from '../auth/userlist.js';
import { backendKeyData, errorResponse, negotiateProtocolVersion, parameterStatus, readyForQuery, type Report } from '../protocol/encode.js';
import { endClient } from '../proxy/end-client.js';
import type { LinkIdentity, ServerLink } from '../server-link/server-link.js';
import { loginClient } from './client-login.js';
import type { PoolMode } from './pool-config.js';
import { PoolError } from './pool-errors.js';
import type { Ticket } from './wait-queue.js';
import type { SessionStateMode } from './session-state-policy.js';
import { linkSessionState } from './link-state.js';
import { settingsCarrySql } from './settings-carry.js';
import { settingsSql, startupSettings, type Setting } from './startup-settings.js';

/** What a pool offers a client session. */
export interface LinkLender {
  /**
   * Waits for a logged-in server connection of the identity's pool; rejects
   * with a PoolError (its report is for the client). `client` names the
   * borrower (its session id) while it holds the link.
   */
  acquire(identity: LinkIdentity, credentials: ServerCredentials, signal: AbortSignal, client: string): Promise<ServerLink>;
  /**
   * The same for transaction pooling, which borrows per transaction: the
   * link goes to `take` (perhaps before this returns), a PoolError to
   * `refuse`; the ticket gives the place in line up.
   */
  lendTo(identity: LinkIdentity, credentials: ServerCredentials, client: string, take: (link: ServerLink) => void, refuse: (err: PoolError) => void): Ticket;
  /**
   * Back from a client: a reusable link is kept (reset first in session
   * mode, or when `reset` says the client left session state on it), any
   * other is closed.
   */
  release(link: ServerLink, reusable: boolean, reset?: boolean): void;
  /** How the (database, user) pool lends: for a session, or for each transaction. */
  modeOf(identity: LinkIdentity): PoolMode;
}

export interface PooledConnectOptions {
  method: AuthMethod;
  /** Transaction pooling: protocol-level statements kept per server connection. */
  maxPreparedStatements: number;
  /** Transaction pooling: what becomes of statements that leave state on their server. */
  sessionState: SessionStateMode;
  lookupSecret(user: string): Promise<Secret | null>;
  lender: LinkLender;
  /** How long the client has to log in (PostgreSQL's authentication_timeout). */
  loginTimeoutMs: number;
}

export interface StartupRequest {
  params: Record<string, string>;
  minor: number;
  /** Bytes the client sent behind its StartupMessage. */
  rest: Buffer;
}

export interface BorrowedServer {
  link: ServerLink;
  /** Whose pool it came from, and how that pool lends. */
  identity: LinkIdentity;
  mode: PoolMode;
  /** What logs txproxy in to the server as this client's user (for the next link, in transaction mode). */
  credentials: ServerCredentials;
  /** The client's startup parameters as settings: what each server it uses must have. */
  settings: Setting[];
  /** ParameterStatus…, BackendKeyData, ReadyForQuery: for the client, as from a fresh backend. */
  welcome: Buffer;
  /** The secret in the client's BackendKeyData. */
  clientKey: Buffer;
  /** What the client sent after its login, for the session. */
  rest: Buffer;
}

export type PooledConnectResult = { kind: 'ready'; server: BorrowedServer } | { kind: 'ended'; reason: string; report: Report | null };

/** `sessionId`: the session the client gets, minted ahead so the pool can name who holds each link. */
export async function connectPooled(client: net.Socket, startup: StartupRequest, options: PooledConnectOptions, sessionId: string): Promise<PooledConnectResult> {
  const user = startup.params.user;
  const database = startup.params.database ?? user;
  const identity = { user, database };
  const login = await loginClient(client, user, startup.rest, {
    method: options.method,
    lookupSecret: options.lookupSecret,
    timeoutMs: options.loginTimeoutMs,
    preamble: protocolPreamble(startup),
  });
  if (login.kind === 'ended') return login;

  // A client that leaves while it waits for a server gives up its place in the queue.
  const abandoned = new AbortController();
  const onClose = () => abandoned.abort();
  client.once('close', onClose);
  let link: ServerLink;
  try {
    link = await options.lender.acquire(identity, login.credentials, abandoned.signal, sessionId);
  } catch (err) {
    const report = failureReport(err as Error, user, database);
    if (!client.destroyed) endClient(client, errorResponse(report));
    return { kind: 'ended', reason: report.message, report };
  } finally {
    client.off('close', onClose);
  }
  if (client.destroyed) {
    options.lender.release(link, true);
    return { kind: 'ended', reason: 'client closed the connection while waiting for a server', report: null };
  }

  const mode = options.lender.modeOf(identity);
  const settings = startupSettings(startup.params);
  // A link of a transaction pool keeps the settings its last client left: it is given only what differs.
  const linkState = mode === 'transaction' ? linkSessionState(link, options.maxPreparedStatements) : null;
  const sql = linkState === null ? settingsSql(settings) : (settingsCarrySql(new Map(settings), linkState.settings) ?? '');
  if (sql !== '') {
    let refusal: Report | null = null;
    try {
      const result = await link.run(sql);
      if (result.error !== null) {
        // The error the server would have given at startup, and as fatal; the connection itself is fine.
        refusal = { severity: 'FATAL', code: result.error.code, message: result.error.message, detail: result.error.detail, hint: result.error.hint };
        options.lender.release(link, result.status === 'I');
      }
    } catch (err) {
      options.lender.release(link, false);
      refusal = failureReport(err as Error, user, database);
    }
    if (refusal !== null) {
      endClient(client, errorResponse(refusal));
      return { kind: 'ended', reason: refusal.message, report: refusal };
    }
  }
  if (linkState !== null) linkState.settings = new Map(settings);

  const clientKey = randomBytes(4);
  const welcome = Buffer.concat([
    ...[...link.parameters].map(([name, value]) => parameterStatus(name, value)),
    backendKeyData(link.backendPid, clientKey),
    readyForQuery('I'),
  ]);
  return { kind: 'ready', server: { link, identity, mode, credentials: login.credentials, settings, welcome, clientKey, rest: login.rest } };
}

/**
 * The server speaks protocol 3.0 to txproxy; a client asking for a newer
 * minor version or for protocol options (`_pq_.…`) is told so, as a server
 * that supports neither tells it, before the authentication request.
 */
function protocolPreamble(startup: StartupRequest): Buffer | undefined {
  const options = Object.keys(startup.params).filter((name) => name.startsWith('_pq_.'));
  if (startup.minor === 0 && options.length === 0) return undefined;
  return negotiateProtocolVersion(0, options);
}

/** What a client that got no server connection is told. */
export function failureReport(err: Error, user: string, database: string): Report {
  // The pool already turned a failed server login into the server's own refusal (pool-errors.ts loginFailed).
  if (err instanceof PoolError) return err.report;
  return {
    severity: 'FATAL',
    code: '08001',
    message: `txproxy could not get a server connection for database "${database}", user "${user}": ${err.message}`,
    hint: 'Check that PostgreSQL is running and that the credentials txproxy holds for this user are valid.',
  };
}
