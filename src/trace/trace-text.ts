/**
 * What trace records (and the admin API, which never shows more than the
 * trace) may hold of SQL text, of the server's error messages and of
 * sqlcommenter tags.
 *
 * Per the `trace.sql` setting:
 * - `full`: SQL as sent, but for passwords (CREATE/ALTER ROLE … PASSWORD
 *   '…' and the like, see redact.ts), which no mode writes in clear; error
 *   messages as the server sent them, but for those of a statement that
 *   held a password.
 * - `redacted`: literals of SQL replaced by `?`, and the values that error
 *   messages quote (redact-message.ts).
 * - `off`: no SQL; error messages as in `redacted`.
 *
 * And in every mode, lengths are capped (`trace.max_sql_length`,
 * `trace.max_tag_length`): what a client sends once must not be copied
 * whole into every record after it (a 1 MB route tag is in the record of
 * each statement of its request). A cut value ends with TRUNCATED_MARK.
 */
import type { StatementInfo } from '../sql/classify.js';
import { utf8Bytes } from './json-bytes.js';
import { terminalSafeJson } from './json-text.js';
import { redactMessage } from '../sql/redact-message.js';
import { holdsSecret, maskSecrets, redactSql } from '../sql/redact.js';
import type { SqlCommenterTags } from '../sql/sqlcommenter.js';
import type { RequestInfo } from '../tracker/types.js';

export type SqlTraceMode = 'full' | 'redacted' | 'off';

export interface TraceTextOptions {
  sql: SqlTraceMode;
  /** Longest SQL text or error message a record keeps, in characters. */
  maxSqlLength: number;
  /** Longest sqlcommenter tag key or value a record keeps, in characters. */
  maxTagLength: number;
}

/** sqlcommenter tags kept per request; frameworks send fewer than ten. */
export const MAX_TAGS = 32;

/** What a cut value ends with: `…[truncated from <n> characters]`. */
export function truncatedMark(length: number): string {
  return `…[truncated from ${length} characters]`;
}

export class TraceText {
  readonly mode: SqlTraceMode;
  private readonly maxSql: number;
  private readonly maxTag: number;
  /** A request's attribution fields as JSON bytes, made once per request (its statements share them). */
  private readonly requestFragments = new WeakMap<RequestInfo, Uint8Array>();
  private readonly requestFields = new WeakMap<RequestInfo, Record<string, unknown>>();

  constructor(options: TraceTextOptions) {
    this.mode = options.sql;
    this.maxSql = options.maxSqlLength;
    this.maxTag = options.maxTagLength;
  }

  /**
   * SQL text for a record, or undefined when SQL is not traced. `info` is
   * the tracker's reading of the text, when there is one: it tells the
   * string syntax the server read the text with, and spares the look for a
   * password in statements that cannot hold one.
   */
  sql(text: string, info?: StatementInfo): string | undefined {
    if (this.showsAsSent(info, text.length)) return text;
    if (this.mode === 'off') return undefined;
    // Cut first: the work below is then bounded too. A string cut open runs to the end, and is blanked whole.
    const cut = cutAt(text, this.maxSql);
    const head = cut < text.length ? text.slice(0, cut) : text;
    const masked = mayHoldSecret(info) ? maskSecrets(head) : head;
    const shown = this.mode === 'redacted' ? redactSql(masked, info?.standardConformingStrings) : masked;
    return cut < text.length ? shown + truncatedMark(text.length) : shown;
  }

  /** Whether sql(text, info) is `text` itself, for a text of this length that the tracker read as `info`. */
  showsAsSent(info: StatementInfo | undefined, length: number): boolean {
    return this.mode === 'full' && length <= this.maxSql && !mayHoldSecret(info);
  }

  /**
   * A server error message for a record. `statementText` is the SQL that
   * failed, when known: a statement with a password may have it echoed
   * (`syntax error at or near "…"`), so its message is redacted in any mode.
   */
  errorMessage(message: string, statementText?: string): string {
    const cut = cutAt(message, this.maxSql);
    const head = cut < message.length ? message.slice(0, cut) : message;
    const redact = this.mode !== 'full' || (statementText !== undefined && holdsSecret(statementText));
    const shown = redact ? redactMessage(head) : head;
    return cut < message.length ? shown + truncatedMark(message.length) : shown;
  }

  /** Request attribution: the request id always, sqlcommenter fields when tagged. */
  addRequest(record: Record<string, unknown>, request: RequestInfo): void {
    record['request.id'] = request.id;
    if (request.tags === null) return;
    Object.assign(record, this.taggedFields(request));
  }

  /** The fields of addRequest as JSON text with a leading comma, in UTF-8, for the trace writer's records. */
  requestBytes(request: RequestInfo): Uint8Array {
    let fragment = this.requestFragments.get(request);
    if (fragment === undefined) {
      const fields: Record<string, unknown> = {};
      this.addRequest(fields, request);
      fragment = utf8Bytes(',' + terminalSafeJson(JSON.stringify(fields)).slice(1, -1));
      this.requestFragments.set(request, fragment);
    }
    return fragment;
  }

  private taggedFields(request: RequestInfo): Record<string, unknown> {
    let fields = this.requestFields.get(request);
    if (fields === undefined) {
      fields = {};
      const max = this.maxTag;
      if (request.traceId !== null) fields.trace_id = request.traceId;
      if (request.route !== null) fields['http.route'] = cap(request.route, max);
      if (request.controller !== null) fields.controller = cap(request.controller, max);
      if (request.action !== null) fields.action = cap(request.action, max);
      if (request.application !== null) fields.application = cap(request.application, max);
      fields.sqlcommenter = capTags(request.tags as SqlCommenterTags, max);
      this.requestFields.set(request, fields);
    }
    return fields;
  }
}

/** The tags as they are when within the limits, else a capped copy (at most MAX_TAGS, then a `…` entry counting the rest). */
function capTags(tags: SqlCommenterTags, max: number): SqlCommenterTags {
  const keys = Object.keys(tags);
  if (keys.length <= MAX_TAGS && keys.every((key) => key.length <= max && tags[key].length <= max)) return tags;
  const capped: SqlCommenterTags = {};
  for (const key of keys.slice(0, MAX_TAGS)) capped[cap(key, max)] = cap(tags[key], max);
  if (keys.length > MAX_TAGS) capped['…'] = `${keys.length - MAX_TAGS} more tags`;
  return capped;
}

function cap(value: string, max: number): string {
  const cut = cutAt(value, max);
  return cut < value.length ? value.slice(0, cut) + truncatedMark(value.length) : value;
}

/** Where to cut a value to at most `max` characters, not between the two halves of a surrogate pair. */
function cutAt(value: string, max: number): number {
  if (value.length <= max) return value.length;
  const last = value.charCodeAt(max - 1);
  return last >= 0xd800 && last <= 0xdbff ? max - 1 : max;
}

/** Only CREATE and ALTER statements set passwords; without the tracker's reading, the text is looked at. */
function mayHoldSecret(info: StatementInfo | undefined): boolean {
  if (info === undefined) return true;
  const operation = info.operation;
  return operation.startsWith('CREATE') || operation.startsWith('ALTER');
}
