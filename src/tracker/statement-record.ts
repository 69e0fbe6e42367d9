/**
 * The tracker's record of a statement. A Query of a known shape gives its
 * statements their text only when something reads it (ShapedQuery): with
 * the trace tail-sampled and metrics on, nearly no record's text is read,
 * and making it cost more than the rest of tracking the statement.
 */
import type { TxStatus } from '../protocol/codes.js';
import type { ErrorFields } from '../protocol/decode.js';
import type { StatementInfo } from '../sql/classify.js';
import type { ShapedQuery } from '../sql/statement-cache.js';
import type { Protocol, RequestInfo, StatementRecord } from './types.js';

export class TrackedStatement implements StatementRecord {
  seq = 0;
  transactionId: string | null = null;
  startedAt = 0;
  startMono = 0;
  durationMs = 0;
  txStatusAfter: TxStatus | null = null;
  commandTag: string | null = null;
  rows: number | null = null;
  dataRows = 0;
  error: ErrorFields | null = null;
  savepointDepth = 0;
  lockWaitMs = 0;
  suspended = false;
  interrupted = false;
  copy: 'in' | 'out' | 'both' | null = null;
  /** The text, once made; until then `shaped` holds what it is made from. */
  private madeText: string;
  private shaped: ShapedQuery | null;
  private readonly shapedIndex: number;

  /** `text` is a string, or the Query and the statement's place in it. */
  constructor(
    readonly sessionId: string,
    readonly protocol: Protocol,
    text: string | ShapedQuery,
    index: number,
    /** For a ShapedQuery's statement, the shape's: read `text`, not `info.text`. */
    readonly info: StatementInfo,
    readonly statementName: string | null,
    public request: RequestInfo,
    public txStatusBefore: TxStatus,
  ) {
    this.madeText = typeof text === 'string' ? text : '';
    this.shaped = typeof text === 'string' ? null : text;
    this.shapedIndex = index;
  }

  get text(): string {
    if (this.shaped !== null) {
      this.madeText = this.shaped.statementText(this.shapedIndex);
      this.shaped = null;
    }
    return this.madeText;
  }

  /** text.length, without making the text. */
  get textLength(): number {
    return this.shaped !== null ? this.shaped.statementLength(this.shapedIndex) : this.madeText.length;
  }

  /**
   * Whether the text is not made yet and can be written as bytes by
   * writeText(): it is then its own JSON string body.
   */
  get textWritable(): boolean {
    return this.shaped !== null && this.shaped.jsonSafe;
  }

  /** The text as bytes into `out` at `pos`, without making it; returns where it ends. Only while textWritable. */
  writeText(out: Uint8Array, pos: number): number {
    if (this.shaped === null) throw new Error('the text is made: write it as a string');
    return this.shaped.writeStatementText(this.shapedIndex, out, pos);
  }
}

/** The length of a record's text, made or not (TrackedStatement). */
export function statementTextLength(statement: StatementRecord): number {
  return statement instanceof TrackedStatement ? statement.textLength : statement.text.length;
}
