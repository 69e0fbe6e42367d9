/**
 * The trace records the renderer reads, decoded from their flat JSON form
 * (docs/traces.md) into typed values. Decoding is lenient about optional
 * fields (older traces, `trace.sql: off`) and strict about the few fields
 * the transcript cannot do without (ids and sequence numbers): a record
 * missing one of those is reported as malformed, never guessed at.
 *
 * Every string is made printable as its field is read (record-fields.ts);
 * the types are in record-types.ts, the decoders of each kind beside them.
 */
import { decodeDeadlock, decodeLockWait } from './lock-record-decoders.js';
import { decodePin } from './pin-record-decoders.js';
import { decodeDryRun, decodePolicy } from './policy-record-decoders.js';
import { printable } from './printable.js';
import { MissingField, type Json } from './record-fields.js';
import type { TraceEvent } from './record-types.js';
import { decodeSession, decodeStatement, decodeTransaction } from './session-record-decoders.js';

export type Decoded =
  | { ok: true; event: TraceEvent }
  /** A kind this renderer does not know (a newer writer): skipped quietly. */
  | { ok: true; event: null }
  | { ok: false; reason: string };

/** Parses and decodes one NDJSON line (or one SSE data payload). */
export function decodeLine(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text around the mistake.
    return { ok: false, reason: `not valid JSON (${printable((err as Error).message)})` };
  }
  return decodeRecord(value);
}

export function decodeRecord(value: unknown): Decoded {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not a JSON object' };
  const r = value as Json;
  if (typeof r.kind !== 'string') return { ok: false, reason: 'no "kind" field' };
  try {
    switch (r.kind) {
      case 'session':
        return { ok: true, event: decodeSession(r) };
      case 'statement':
        return { ok: true, event: decodeStatement(r) };
      case 'transaction':
        return { ok: true, event: decodeTransaction(r) };
      case 'lock_wait':
        return { ok: true, event: decodeLockWait(r) };
      case 'deadlock':
        return { ok: true, event: decodeDeadlock(r) };
      case 'policy':
        return { ok: true, event: decodePolicy(r) };
      case 'dry_run':
        return { ok: true, event: decodeDryRun(r) };
      case 'pin':
      case 'unpin':
        return { ok: true, event: decodePin(r, r.kind) };
      default:
        return { ok: true, event: null };
    }
  } catch (err) {
    if (err instanceof MissingField) return { ok: false, reason: `${r.kind} record ${err.message}` };
    throw err;
  }
}
