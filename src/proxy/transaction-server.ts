/**
 * The server side of a session in transaction pooling: the client holds a
 * pooled server connection only while it needs one. At each ReadyForQuery
 * with nothing in flight and no transaction open the session asks `idle()`,
 * and the link goes back to its pool unless the client holds state on it
 * (session-state.ts; the server itself is asked when a statement may have
 * changed that). The client's next message waits until a link is lent
 * again and given the client's settings (settings-carry.ts).
 *
 * Protocol-level prepared statements are renamed per link by the
 * session's PreparedStatementRewriter; this side only says which link's
 * cache applies.
 */
import type net from 'node:net';
import type { ServerCredentials } from '../auth/client-authenticator.js';
import { cancelRequest, parameterStatus, type Report } from '../protocol/encode.js';
import { forgetLinkSessionState, linkSessionState } from '../pool/link-state.js';
import { failureReport, type BorrowedServer, type LinkLender } from '../pool/pooled-connect.js';
import type { PinReason } from '../pool/session-effects.js';
import { parseSessionProbe, sessionProbeSql } from '../pool/session-probe.js';
import { certainPins, sessionStateRefusal, type SessionStateMode } from '../pool/session-state-policy.js';
import { EntryKind, type Entry } from '../tracker/session-tracker.js';
import { SessionPins } from '../pool/session-state.js';
import { clientSettings, sameSettings, settingsCarrySql } from '../pool/settings-carry.js';
import type { Setting } from '../pool/startup-settings.js';
import type { ServerStatementCache } from '../pool/prepared-statements.js';
import type { Ticket } from '../pool/wait-queue.js';
import type { LinkIdentity, ServerLink } from '../server-link/server-link.js';
import { ProxyErrors } from './errors.js';
import { HeldMessages } from './held-messages.js';
import { PooledServerSide } from './pooled-server-side.js';
import type { ServerSide } from './server-side.js';
import type { TransactionSessionPort } from './transaction-session-port.js';

export type { TransactionSessionPort } from './transaction-session-port.js';

export interface TransactionServerOptions {
  lender: LinkLender;
  maxPreparedStatements: number;
  /** What becomes of a statement certain to leave state on its server (session-state-policy.ts). */
  sessionState: SessionStateMode;
}

type Phase =
  /** The session relays through the link. */
  | 'held'
  /** No link: the client's next chunk asks for one. */
  | 'none'
  /** Waiting for the pool, or giving a link the client's settings. */
  | 'acquiring'
  /** txproxy asks the link what the client left on it. */
  | 'probing';

export class TransactionServerSide extends PooledServerSide implements ServerSide {
  readonly pins = new SessionPins();
  private link: ServerLink | null;
  private phase: Phase = 'held';
  /** The link's cancel key; kept after the link went back, as the pid is. */
  private key: Buffer;
  private pid: number;
  /** Client chunks that came while no link was held, in order. */
  private readonly held = new HeldMessages();
  private readonly identity: LinkIdentity;
  private readonly credentials: ServerCredentials;
  private readonly startupSettings: Setting[];
  /** The settings each link must have for this client: its startup parameters, then what it SET. */
  private wanted: Map<string, string>;
  /** Pin reasons already logged (pool.session_state: warn), once per session each. */
  private readonly warned = new Set<PinReason>();
  /** Pin reasons last reported (pinsChanged). */
  private shown = new Set<PinReason>();
  /** The client cancelled while its messages waited for a link (see cancelPacketFor). */
  private cancelWhenSent = false;
  /** The session ended: a link that comes now goes straight back. */
  private over = false;
  /** The place in line for a link, while the pool has not answered. */
  private ticket: Ticket | null = null;
  private readonly onLinkData = (chunk: Buffer) => this.port.fromServer(chunk);
  private readonly onLinkClose = () => this.port.upstreamGone();

  constructor(
    borrowed: BorrowedServer,
    private readonly port: TransactionSessionPort,
    private readonly options: TransactionServerOptions,
  ) {
    super();
    this.identity = borrowed.identity;
    this.credentials = borrowed.credentials;
    this.startupSettings = borrowed.settings;
    this.wanted = new Map(borrowed.settings);
    this.link = borrowed.link;
    this.key = borrowed.link.backendKey;
    this.pid = borrowed.link.backendPid;
    borrowed.link.attach(this.onLinkData, this.onLinkClose);
  }

  get socket(): net.Socket | null {
    return this.phase === 'held' ? this.link!.socket : null;
  }

  get onLoan(): boolean {
    return this.phase === 'held';
  }

  /** Why the client is held on its server, as last reported. */
  get pinned(): readonly PinReason[] {
    return [...this.shown];
  }

  /** The prepared statements of the link held now. */
  get statements(): ServerStatementCache | null {
    return this.phase === 'held' ? linkSessionState(this.link!, this.options.maxPreparedStatements).statements : null;
  }

  /**
   * A cancel goes to the link the client holds now. A lone simple Query
   * waiting in line for a link is answered 57014 at once, as a server that
   * got the cancel ahead of the Query would, and the client leaves the
   * line. Other messages waiting for a link (a batch, or more than one
   * Query) have their first statement answered 57014 in the server's stead
   * when they go (or, when they hold none but an Execute, the cancel
   * follows them to the server). With nothing waiting, nothing runs for the
   * client and the cancel is dropped, as the server drops one for an idle
   * session.
   */
  cancelPacketFor(): Buffer | null {
    if (this.phase === 'held') return cancelRequest(this.pid, this.key);
    if (this.answerQueuedQuery()) return null;
    if (!this.held.empty) this.cancelWhenSent = true;
    return null;
  }

  private answerQueuedQuery(): boolean {
    const query = this.held.loneQuery();
    if (query === null || this.ticket === null || !this.ticket.cancel()) return false;
    this.ticket = null;
    this.held.takeAll();
    this.phase = 'none';
    this.port.answerWithoutServer(query, ProxyErrors.cancelledWhileWaiting());
    this.port.resumeClient();
    return true;
  }

  serverKey(): Buffer {
    return this.key;
  }

  /**
   * `pool.session_state` on a client message the tracker just recorded (a
   * Query or a Parse): the refusal to send in its place, or null to send it
   * (and pin, if it leaves state).
   */
  refusal(entry: Entry): Report | null {
    if (this.options.sessionState === 'pin') return null;
    const statements = entry.kind === EntryKind.Query ? entry.statements : entry.kind === EntryKind.Parse && entry.prepared !== undefined ? [entry.prepared] : [];
    for (const statement of statements) {
      const reason = certainPins(statement.text, statement.info.operation)[0];
      if (reason === undefined || reason === 'unknown') continue;
      if (this.options.sessionState === 'refuse') return sessionStateRefusal(statement.info.operation, reason);
      if (!this.warned.has(reason)) {
        this.warned.add(reason);
        this.port.log.warn({ operation: statement.info.operation, reason }, 'statement pins the client to its server connection in transaction pooling');
      }
    }
    return null;
  }

  /**
   * A client chunk with no link to relay it to: held until one is lent
   * (held-messages.ts). True: the chunk itself is kept.
   *
   * The client is read on meanwhile, so that one leaving while it waits
   * gives its place in the queue up at once; only when too much is held is
   * it paused, as TCP would hold it back from a busy server.
   */
  hold(chunk: Buffer): boolean {
    if (this.over) return false;
    // A goodbye between transactions needs no server: a pooled one never sees the client's Terminate.
    if (this.held.isGoodbye(chunk)) {
      this.port.terminated();
      return false;
    }
    const kept = this.held.push(chunk);
    if (this.held.full) this.port.pauseClient();
    if (this.phase === 'none') this.acquire();
    return kept;
  }

  /**
   * The client stopped sending while its messages wait for a link: true
   * when they end with its Terminate, so it counted on them being run
   * (the session then ends once they are sent). A client that left
   * without its goodbye is taken out of the queue, its messages unsent,
   * as if it had left before sending them.
   */
  leavesMessagesToRun(): boolean {
    return this.held.endsWithTerminate();
  }

  /**
   * At a ReadyForQuery outside a transaction block, with nothing in flight
   * either way: the link goes back to the pool unless the client holds
   * state on it, after asking the server when a statement may have changed
   * what it holds.
   */
  idle(): void {
    if (this.phase !== 'held') return;
    const decision = this.pins.decide('I');
    if (decision.kind === 'keep') this.showPins();
    else if (decision.kind === 'probe') void this.probe();
    else this.letGo();
  }

  /** The session ends while holding the link (see SessionEndings.giveBack). */
  giveBack(reusable: boolean, blocked: boolean): void {
    const link = this.link!;
    this.detach();
    this.link = null;
    this.phase = 'none';
    if (blocked) link.socket.destroy();
    this.release(link, reusable);
  }

  ended(): void {
    this.over = true;
    this.held.takeAll();
    this.ticket?.cancel();
    this.ticket = null;
  }

  /** The session's records are written: its pins end with it (after them, so traces read in order). */
  unpinAll(): void {
    this.showPins(new Set());
  }

  /**
   * Back to the pool when the client leaves: as it is, or reset when the
   * client left state on it, or settings txproxy has not read back (the
   * next client would be given only what differs from what txproxy knows).
   * A LOAD cannot be undone: that link is closed.
   */
  private release(link: ServerLink, reusable: boolean): void {
    const pins = this.pins.reasons();
    if (!reusable || pins.includes('load')) return this.options.lender.release(link, false);
    if (pins.length === 0 && !this.pins.settingsStale) return this.options.lender.release(link, true);
    forgetLinkSessionState(link);
    this.options.lender.release(link, true, true);
  }

  private letGo(): void {
    const link = this.link!;
    this.detach();
    this.link = null;
    this.phase = 'none';
    this.options.lender.release(link, true);
  }

  /** The session stops relaying the link. */
  private detach(): void {
    const link = this.link!;
    link.attach(null);
    this.port.serverChanged(null, 0);
  }

  /**
   * Asks the pool for a link. The pool may answer at once, or from another
   * session's release: what follows runs in a microtask of its own either way.
   */
  private acquire(): void {
    this.phase = 'acquiring';
    let answered = false;
    const ticket = this.options.lender.lendTo(
      this.identity,
      this.credentials,
      this.port.sessionId,
      (link) => {
        answered = true;
        this.ticket = null;
        queueMicrotask(() => this.lent(link));
      },
      (err) => {
        answered = true;
        this.ticket = null;
        queueMicrotask(() => {
          if (!this.over) this.port.fail(failureReport(err, this.identity.user, this.identity.database));
        });
      },
    );
    if (!answered) this.ticket = ticket;
  }

  /** A link for the client's held messages: given the client's settings, if it lacks any, then used. */
  private lent(link: ServerLink): void {
    if (this.over) return this.options.lender.release(link, true);
    const state = linkSessionState(link, this.options.maxPreparedStatements);
    // Most often the link has them already: no round trip, no promise.
    if (sameSettings(this.wanted, state.settings)) return this.attach(link);
    this.carrySettings(link).then(
      (carried) => {
        if (this.over) return this.options.lender.release(link, true);
        this.attach(link, carried);
      },
      (err: Error) => {
        this.options.lender.release(link, !link.closed);
        if (!this.over) this.port.fail(failureReport(err, this.identity.user, this.identity.database));
      },
    );
  }

  /**
   * Gives `link` the client's settings where they differ. Returns what the
   * client must be told of it: a ParameterStatus for each reported
   * parameter that now differs from what the client was told (after a
   * RESET ALL it was told the server's own value), and notifications that
   * came meanwhile.
   */
  private async carrySettings(link: ServerLink): Promise<Buffer[]> {
    const state = linkSessionState(link, this.options.maxPreparedStatements);
    const sql = settingsCarrySql(this.wanted, state.settings);
    if (sql === null) return [];
    const before = new Map(link.parameters);
    const result = await link.run(sql);
    if (result.error !== null) throw new Error(`giving the server connection the session's settings failed: ${result.error.message} (${result.error.code})`);
    state.settings = new Map(this.wanted);
    const out = [...result.notifications];
    for (const [name, value] of link.parameters) {
      // Only what the client was told otherwise: the value it set is usually what it knows already.
      if (before.get(name) !== value && this.port.parameterShown(name) !== value) out.push(parameterStatus(name, value));
    }
    return out;
  }

  /** `before`: messages for the client ahead of the link's own (see carrySettings). */
  private attach(link: ServerLink, before: Buffer[] = []): void {
    this.link = link;
    this.key = link.backendKey;
    this.pid = link.backendPid;
    this.phase = 'held';
    link.attach(this.onLinkData, this.onLinkClose);
    this.port.serverChanged(link.socket, link.backendPid);
    link.socket.resume();
    const first = [...before, ...link.takeNotifications()];
    if (first.length > 0) this.port.fromServer(Buffer.concat(first));
    const held = this.held.takeAll();
    const cancelled = this.cancelWhenSent;
    this.cancelWhenSent = false;
    if (cancelled) this.port.cancelNextStatement(true);
    for (const chunk of held) {
      if (this.phase !== 'held') return;
      this.port.replay(chunk);
    }
    if (cancelled && this.port.cancelNextStatement(false)) this.port.cancel(cancelRequest(this.pid, this.key));
    this.port.resumeClient();
    if (held.length > 0) this.port.replayed();
  }

  /** Asks the server what the client left on it; then keeps the link or lets it go. */
  private async probe(): Promise<void> {
    const link = this.link!;
    this.detach();
    this.phase = 'probing';
    let state;
    let carried: Buffer[] = [];
    try {
      const result = await link.run(sessionProbeSql(this.identity.user));
      state = parseSessionProbe(result);
      carried = result.notifications;
      this.pins.probed(state);
      this.wanted = clientSettings(this.startupSettings, state.settings);
      linkSessionState(link, this.options.maxPreparedStatements).settings = state.settings;
      // Pinned, or the client already sent more: it goes on on this link, which must have its settings.
      if (!this.over && (this.pins.pinned || !this.held.empty)) carried = [...carried, ...(await this.carrySettings(link))];
    } catch (err) {
      this.port.log.warn({ err: (err as Error).message }, 'session probe failed');
      this.link = null;
      this.options.lender.release(link, false);
      // What the client holds on that server is unknown now: its session cannot go on elsewhere.
      if (!this.over) this.port.fail(failureReport(err as Error, this.identity.user, this.identity.database));
      return;
    }
    if (this.over) {
      this.link = null;
      this.release(link, true);
      return;
    }
    this.showPins();
    if (this.pins.pinned || !this.held.empty) return this.attach(link, carried);
    // Notifications come only to a client that listens, which is pinned: none is lost here.
    this.link = null;
    this.phase = 'none';
    this.options.lender.release(link, true);
  }

  private showPins(now: Set<PinReason> = new Set(this.pins.reasons())): void {
    const added = [...now].filter((reason) => !this.shown.has(reason));
    const removed = [...this.shown].filter((reason) => !now.has(reason));
    this.shown = now;
    if (added.length > 0 || removed.length > 0) this.port.pinsChanged(added, removed);
  }
}
