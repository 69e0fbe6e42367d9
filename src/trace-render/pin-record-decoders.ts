/** Decoders of the pooling records: a session held on its server connection (`pin`) or let go (`unpin`). */
import { printable } from './printable.js';
import { num, sessionIdOf, str, timeOf, type Json } from './record-fields.js';
import type { PinEvent } from './record-types.js';

export function decodePin(r: Json, kind: 'pin' | 'unpin'): PinEvent {
  return {
    kind,
    time: timeOf(r),
    sessionId: sessionIdOf(r),
    database: str(r, 'db.namespace'),
    backendPid: num(r, 'pg.backend_pid'),
    reasons: reasonsOf(r),
  };
}

/**
 * The reasons as written, printable; anything not a string is left out. A
 * reason this renderer does not know (a newer writer) is shown as it is.
 */
function reasonsOf(r: Json): string[] {
  const v = r.reasons;
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').map(printable) : [];
}
