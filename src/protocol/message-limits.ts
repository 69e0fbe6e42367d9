/**
 * The largest length field accepted for each message type, as PostgreSQL
 * sets it: a message over its limit is a protocol violation, refused on its
 * header before any of its body is read or held.
 *
 * - Before authentication PostgreSQL reads only password / SASL / GSS
 *   responses, each with a cap of PG_MAX_AUTH_TOKEN_LENGTH (auth.c). A client
 *   that has not logged in yet must not make txproxy hold more than that.
 * - Once logged in, the backend's SocketBackend() (tcop/postgres.c) gives
 *   Query, FunctionCall, Bind, Parse and CopyData the large limit and every
 *   other message its small limit, PQ_SMALL_MESSAGE_LIMIT; the COPY FROM
 *   STDIN loop does the same for CopyData / CopyDone / CopyFail / Flush /
 *   Sync. PostgreSQL closes the connection on a message over its limit.
 *
 * `max_message_length` caps every message on top of these (by default it is
 * PostgreSQL's own largest, PQ_LARGE_MESSAGE_LIMIT).
 */

import { Frontend } from './codes.js';

/** PostgreSQL's limit for messages that have no reason to be long (pqcomm.h). */
export const PQ_SMALL_MESSAGE_LIMIT = 10000;

/** PostgreSQL's limit for authentication responses before login (auth.h). */
export const PG_MAX_AUTH_TOKEN_LENGTH = 65535;

/** Whose limit a length field broke: it decides what the client is told to do. */
export type LimitSource = 'max_message_length' | 'postgresql' | 'authentication';

export class MessageLimits {
  private constructor(
    /** Largest accepted length field (which counts itself) per type byte. */
    readonly lengths: Int32Array,
    /** The configured max_message_length. */
    readonly configured: number,
    private readonly phase: 'authentication' | 'session',
  ) {}

  /** The same limit for every type: the server's messages, or tests. */
  static uniform(maxLength: number): MessageLimits {
    return new MessageLimits(new Int32Array(256).fill(maxLength), maxLength, 'session');
  }

  /** A client that has not logged in yet: nothing longer than an authentication response. */
  static beforeAuthentication(maxLength: number): MessageLimits {
    return new MessageLimits(new Int32Array(256).fill(Math.min(maxLength, PG_MAX_AUTH_TOKEN_LENGTH)), maxLength, 'authentication');
  }

  /** A logged-in client: PostgreSQL's small limit for all but the messages that carry SQL or data. */
  static frontend(maxLength: number): MessageLimits {
    const lengths = new Int32Array(256).fill(maxLength);
    for (const type of SMALL_FRONTEND_MESSAGES) lengths[type] = Math.min(maxLength, PQ_SMALL_MESSAGE_LIMIT);
    return new MessageLimits(lengths, maxLength, 'session');
  }

  /** Why `limit` applies: the configured cap, or one PostgreSQL sets itself. */
  sourceOf(limit: number): LimitSource {
    if (limit >= this.configured) return 'max_message_length';
    return this.phase === 'authentication' ? 'authentication' : 'postgresql';
  }
}

/** Frontend messages PostgreSQL reads with PQ_SMALL_MESSAGE_LIMIT. */
const SMALL_FRONTEND_MESSAGES = [
  Frontend.Close,
  Frontend.Describe,
  Frontend.Execute,
  Frontend.Flush,
  Frontend.Sync,
  Frontend.Terminate,
  Frontend.CopyDone,
  Frontend.CopyFail,
];
