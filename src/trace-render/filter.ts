/**
 * The `txproxy trace` filters. Each given filter must match; items that a
 * filter cannot speak about are hidden while it is given (a session start
 * or a pin has no route and no duration).
 */
import type { TranscriptItem } from './transcript.js';

export interface TraceFilter {
  /** Only this `session.id`. */
  sessionId: string | null;
  /** Only this `http.route` (sqlcommenter `route`), exactly. */
  route: string | null;
  /** Only transactions (and lock waits, statements outside transactions) lasting at least this long. */
  minMs: number | null;
}

export const NO_FILTER: TraceFilter = { sessionId: null, route: null, minMs: null };

export function matchesFilter(item: TranscriptItem, filter: TraceFilter): boolean {
  const { sessionId, route, durationMs } = facts(item);
  if (filter.sessionId !== null && sessionId !== filter.sessionId) return false;
  if (filter.route !== null && route !== filter.route) return false;
  if (filter.minMs !== null && (durationMs === null || durationMs < filter.minMs)) return false;
  return true;
}

function facts(item: TranscriptItem): { sessionId: string; route: string | null; durationMs: number | null } {
  switch (item.type) {
    case 'transaction': {
      const { block } = item;
      const route = block.tx?.route ?? block.statements.find((s) => s.route !== null)?.route ?? null;
      // An unfinished transaction lasted at least as long as its statements ran.
      const durationMs = block.tx?.durationMs ?? block.statements.reduce((sum, s) => sum + s.durationMs, 0);
      return { sessionId: block.sessionId, route, durationMs };
    }
    case 'session':
    case 'pin':
      return { sessionId: item.event.sessionId, route: null, durationMs: null };
    case 'statement':
      return { sessionId: item.statement.sessionId, route: item.statement.route, durationMs: item.statement.durationMs };
    case 'note':
      return { sessionId: item.event.sessionId, route: item.event.route, durationMs: item.event.kind === 'lock_wait' ? item.event.durationMs : null };
    case 'dry_run':
      return { sessionId: item.event.sessionId, route: item.event.route, durationMs: null };
    case 'request':
      return { sessionId: item.summary.sessionId, route: item.summary.route, durationMs: null };
  }
}
