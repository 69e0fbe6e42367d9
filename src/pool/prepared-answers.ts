/**
 * Matches the server's answers to the client's messages once prepared
 * statements are renamed: some messages txproxy sent on its own (a Parse
 * injected before a Bind, the Close of an evicted statement) have answers
 * the client must not see, and some client messages never reached the
 * server (a Parse the server already has, a Close of a statement) and
 * txproxy answers them itself, in the place the server would have.
 *
 * One entry per message sent (or answered in its stead), in order. An entry
 * is complete when its last answer arrives (ParseComplete for a Parse,
 * RowDescription or NoData for a Describe, ReadyForQuery for a Sync...).
 * Synthesized answers leave as soon as every entry before them is complete.
 *
 * An ErrorResponse in the extended protocol makes the server skip every
 * message up to Sync: the entries from the failed one to the Sync get no
 * answer, so their synthesized answers are dropped (PostgreSQL would not have
 * answered them either) and their effects on the registries are undone.
 */
import { Backend } from '../protocol/codes.js';
import type { ServerStatementCache } from './prepared-statements.js';

export type PendingKind =
  /** The server answers, the client sees it. */
  | 'relay'
  /** The server answers a message txproxy added: the client must not see it. */
  | 'swallow'
  /** Nothing reaches the server: txproxy sends `answer` to the client. */
  | 'synthesize'
  /** A stand-in txproxy sent fails on purpose: the client gets `answer` instead of the server's error. */
  | 'replace-error'
  /** Sync: the end of the skip after an error. */
  | 'sync';

/** One expected answer; read only, so that one entry may stand for many messages. */
export interface Pending {
  readonly kind: PendingKind;
  /** Backend type bytes that complete the entry. */
  readonly ends: readonly number[];
  /** Bytes txproxy sends the client ('synthesize', 'replace-error'). */
  readonly answer?: Buffer;
  /** Reverts what the message did to the registries, if the server skips it. */
  readonly undo?: () => void;
}

/** What to send the client for one server message, and in which order. */
export type ClientChunks = Buffer[];

export const ENDS_PARSE = [Backend.ParseComplete];
export const ENDS_BIND = [Backend.BindComplete];
export const ENDS_CLOSE = [Backend.CloseComplete];
export const ENDS_DESCRIBE = [Backend.RowDescription, Backend.NoData];
export const ENDS_EXECUTE = [Backend.CommandComplete, Backend.EmptyQueryResponse, Backend.PortalSuspended];
export const ENDS_CYCLE = [Backend.ReadyForQuery];

export class PreparedAnswers {
  private queue: Pending[] = [];
  private head = 0;
  /** An error was relayed and its Sync is not sent yet: new entries get no answer. */
  private skipping = false;
  /** Called when the server dropped every prepared statement (DISCARD ALL, DEALLOCATE ALL). */
  onDeallocateAll: (() => void) | null = null;

  /** Registers the answer(s) expected for the next message, in sending order. */
  expect(entry: Pending): void {
    if (this.skipping) {
      if (entry.kind !== 'sync') {
        entry.undo?.();
        return;
      }
      this.skipping = false;
    }
    this.queue.push(entry);
  }

  /** Synthesized answers whose turn has come: send them to the client now. */
  drain(): ClientChunks {
    const out: Buffer[] = [];
    this.drainInto(out);
    return out;
  }

  /** Entries not answered yet. */
  get pending(): number {
    return this.queue.length - this.head;
  }

  /**
   * One whole server message `buf[start, end)`: what to send the client for
   * it (possibly nothing, possibly synthesized answers around it), or null
   * for the message itself alone, as most are. `cache` is the link the
   * message came from.
   */
  answer(cache: ServerStatementCache, buf: Buffer, start: number, end: number): ClientChunks | null {
    const type = buf[start];
    if (type === Backend.NoticeResponse || type === Backend.ParameterStatus || type === Backend.NotificationResponse) return null;
    const entry = this.peek();
    if (entry === undefined) return null;
    if (entry.kind === 'relay' && type !== Backend.ErrorResponse) {
      // The answer to a client message sent as it was: on the hot path, nothing to allocate.
      this.noteDeallocateAll(cache, type, buf, start, end);
      if (!entry.ends.includes(type)) return null;
      this.pop();
      if (type === Backend.ReadyForQuery) cache.readyForQuery(String.fromCharCode(buf[start + 5]));
      if (this.peek()?.kind !== 'synthesize') return null;
      const out = [buf.subarray(start, end)];
      this.drainInto(out);
      return out;
    }
    const message = buf.subarray(start, end);
    const out: Buffer[] = [];
    // Answers txproxy gives itself go first when their turn has come.
    this.drainInto(out);
    const answered = this.peek();
    if (answered === undefined) {
      out.push(message);
      return out;
    }
    if (type === Backend.ErrorResponse) {
      out.push(answered.kind === 'replace-error' ? answered.answer! : message);
      // A simple Query or FunctionCall still ends with its ReadyForQuery; nothing is skipped.
      if (answered.ends !== ENDS_CYCLE) this.skipToSync();
      return out;
    }
    this.noteDeallocateAll(cache, type, buf, start, end);
    if (answered.kind !== 'swallow') out.push(message);
    if (answered.ends.includes(type)) {
      this.pop();
      if (type === Backend.ReadyForQuery) cache.readyForQuery(String.fromCharCode(buf[start + 5]));
      this.drainInto(out);
    }
    return out;
  }

  /** DISCARD ALL or DEALLOCATE ALL ran: the link has no statement left. */
  private noteDeallocateAll(cache: ServerStatementCache, type: number, buf: Buffer, start: number, end: number): void {
    if (type !== Backend.CommandComplete || !droppedAll(buf, start, end)) return;
    cache.clear();
    this.onDeallocateAll?.();
  }

  /** The link is gone or the client left: every pending entry is void. */
  reset(): void {
    this.queue = [];
    this.head = 0;
    this.skipping = false;
  }

  private peek(): Pending | undefined {
    return this.head < this.queue.length ? this.queue[this.head] : undefined;
  }

  private pop(): void {
    this.head++;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private drainInto(out: Buffer[]): void {
    for (let entry = this.peek(); entry !== undefined && entry.kind === 'synthesize'; entry = this.peek()) {
      out.push(entry.answer!);
      this.pop();
    }
  }

  /** Drops the failed entry and the ones after it up to the Sync, undoing them newest first. */
  private skipToSync(): void {
    const skipped: Pending[] = [];
    let entry = this.peek();
    while (entry !== undefined && entry.kind !== 'sync') {
      skipped.push(entry);
      this.pop();
      entry = this.peek();
    }
    if (entry === undefined) this.skipping = true;
    for (let i = skipped.length - 1; i >= 0; i--) skipped[i].undo?.();
  }
}

/** A CommandComplete whose tag says the server dropped every prepared statement. */
function droppedAll(buf: Buffer, start: number, end: number): boolean {
  // Most tags are neither: no string for them.
  const length = end - 1 - (start + 5);
  if (buf[start + 5] !== 0x44 /* D */ || (length !== 11 && length !== 14)) return false;
  const tag = buf.toString('latin1', start + 5, end - 1);
  return tag === 'DISCARD ALL' || tag === 'DEALLOCATE ALL';
}
