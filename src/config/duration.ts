import { z } from 'zod';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `250ms`, `30s`, `1.5m`, `2h` or a plain number of milliseconds → ms; null if malformed. */
export function parseDuration(value: number | string): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value);
  if (match === null) return null;
  return Number(match[1]) * UNITS[match[2] ?? 'ms'];
}

/** What a duration may look like, for error messages. */
export const DURATION = 'expected a duration such as 500ms, 30s, 5m, or a number of milliseconds';

/** A configuration duration: a number of milliseconds or a string such as `500ms`, `30s`, `5m`; parsed to ms. */
export const durationSchema = z.union([z.number(), z.string()], { error: DURATION }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: DURATION });
    return z.NEVER;
  }
  return ms;
});
