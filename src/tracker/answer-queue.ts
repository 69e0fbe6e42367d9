/**
 * The client messages a session's server has yet to answer, in the order
 * it answers them (a FIFO: responses come back in request order). The
 * server does not answer everything it is sent, and the queue follows it:
 *
 * - After an ErrorResponse in the extended protocol the server skips every
 *   message up to the next Sync; so does the queue.
 * - In copy-in mode (COPY FROM STDIN) the server ignores Sync until the
 *   client ends the copy with CopyDone or CopyFail: those Syncs get no
 *   ReadyForQuery, so they leave the queue too.
 */
import type { Prepared } from './prepared-statements.js';
import type { PortalRun } from './transaction-ledger.js';
import type { StatementRecord } from './types.js';

export const enum EntryKind {
  Query,
  Parse,
  Bind,
  Describe,
  Close,
  Execute,
  Sync,
}

/** A client message awaiting its answer. */
export interface Entry {
  kind: EntryKind;
  /** Query: one per statement; Execute/Parse: one. */
  statements: StatementRecord[];
  /** Query: the statement being answered now. */
  index: number;
  /** Sent by txproxy itself: its answers are not for the client. */
  hidden: boolean;
  /** Parse/Bind: the statement concerned, to report it should it fail. */
  prepared?: Prepared;
  /** The client's next message after this one was CopyDone or CopyFail. */
  copyEndFollows: boolean;
  /** Execute: the run of the portal it executes. */
  portal: PortalRun | null;
}

export class AnswerQueue {
  private readonly queue: Entry[] = [];
  private head = 0;
  /** Set when an error made the server skip to Sync and the client has not sent it yet. */
  private skippingToSync = false;
  /**
   * Set while the server is in copy-in mode and the client has not ended the
   * COPY yet: the server ignores any Sync it receives meanwhile.
   */
  private syncsIgnoredUntilCopyEnd = false;

  /** Messages sent and not yet answered. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /** A client message is sent. Null: the server will skip it, and answer nothing. */
  push(kind: EntryKind, statements: StatementRecord[], hidden: boolean, prepared: Prepared | undefined, portal: PortalRun | null): Entry | null {
    // In copy-in mode the server ignores Sync: it gets no ReadyForQuery.
    if (kind === EntryKind.Sync && this.syncsIgnoredUntilCopyEnd) return null;
    if (this.skippingToSync) {
      // The server discards everything up to Sync after an error.
      if (kind !== EntryKind.Sync) return null;
      this.skippingToSync = false;
    }
    const entry: Entry = { kind, statements, index: 0, hidden, prepared, copyEndFollows: false, portal };
    this.queue.push(entry);
    return entry;
  }

  /** The message the server's next answer is for. */
  peek(): Entry | null {
    return this.head < this.queue.length ? this.queue[this.head] : null;
  }

  /** The head message is fully answered. */
  shift(): Entry | null {
    if (this.head >= this.queue.length) return null;
    const entry = this.queue[this.head];
    this.queue[this.head] = undefined as unknown as Entry;
    this.head++;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return entry;
  }

  /** After an error in the extended protocol, the server ignores everything up to Sync. */
  skipToSync(): void {
    while (this.head < this.queue.length && this.queue[this.head].kind !== EntryKind.Sync) this.shift();
    if (this.head >= this.queue.length) this.skippingToSync = true;
  }

  /** ReadyForQuery: everything up to the Sync or Query it answers is done. Returns that one. */
  ready(): Entry | null {
    let entry: Entry | null = null;
    while (this.head < this.queue.length) {
      entry = this.shift();
      if (entry !== null && (entry.kind === EntryKind.Sync || entry.kind === EntryKind.Query)) break;
    }
    this.skippingToSync = false;
    this.syncsIgnoredUntilCopyEnd = false;
    return entry;
  }

  /** The statement the server turns to next, unless a Sync/Query boundary must be answered first. */
  nextToStart(): StatementRecord | undefined {
    for (let i = this.head; i < this.queue.length; i++) {
      const entry = this.queue[i];
      if (entry.kind === EntryKind.Query) {
        if (i > this.head) return undefined; // a pipelined Query runs after the one ahead is answered
        return entry.statements[entry.index];
      }
      if (entry.kind === EntryKind.Sync) return undefined;
      if (entry.kind === EntryKind.Execute) return entry.statements[0];
    }
    return undefined;
  }

  /** ReadyForQuery messages due before the answers to a message sent now. */
  readiesAhead(): number {
    let readies = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const kind = this.queue[i].kind;
      if (kind === EntryKind.Query || kind === EntryKind.Sync) readies++;
    }
    return readies;
  }

  /** The messages still unanswered, in order (a copy: for the session's end). */
  inFlight(): Entry[] {
    return this.queue.slice(this.head);
  }

  /** The session is over: nothing more will be answered. */
  clear(): void {
    this.queue.length = 0;
    this.head = 0;
  }

  // ---------------------------------------------------------------- COPY

  /**
   * CopyDone/CopyFail: the client ends a COPY FROM STDIN. When the server
   * has not yet said CopyInResponse, mark where the copy data ends, so that
   * the Syncs sent before it can be told from those after it.
   */
  clientEndedCopy(): void {
    if (this.syncsIgnoredUntilCopyEnd) {
      this.syncsIgnoredUntilCopyEnd = false;
      return;
    }
    if (this.head < this.queue.length) this.queue[this.queue.length - 1].copyEndFollows = true;
  }

  /**
   * CopyInResponse. In copy-in mode the server ignores Sync messages
   * (PostgreSQL allows them for clients that send one without noticing the
   * command was a COPY: libpq's PQexecParams writes
   * Parse/Bind/Describe/Execute/Sync, then the data, CopyDone and another
   * Sync). The Syncs queued between the COPY and the client's
   * CopyDone/CopyFail get no ReadyForQuery: drop them, and any that arrive
   * before the client ends the COPY.
   */
  copyInStarted(): void {
    let i = this.head;
    while (i < this.queue.length) {
      const entry = this.queue[i];
      if (i > this.head && entry.kind === EntryKind.Sync) this.queue.splice(i, 1);
      else i++;
      if (entry.copyEndFollows) return;
    }
    this.syncsIgnoredUntilCopyEnd = true;
  }

  /** A command ended (an error can end a COPY before CopyDone): the server leaves copy-in mode, Syncs count again. */
  commandEnded(): void {
    this.syncsIgnoredUntilCopyEnd = false;
  }
}
