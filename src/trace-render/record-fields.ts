/**
 * Reading one field of a flat JSON trace record: lenient readers that give
 * null for a missing or mistyped field, and `required`, which reports the
 * record as malformed instead (MissingField, caught in records.ts).
 *
 * Every string is made printable here (printable.ts): control characters in
 * a record cannot reach the terminal, whichever field they hide in.
 */
import { printable, printableSql } from './printable.js';
import type { Attribution } from './record-types.js';

export type Json = Record<string, unknown>;

/** A field the transcript cannot do without is missing: the record is malformed. */
export class MissingField extends Error {}

export function required<T>(r: Json, key: string, value: T | null): T {
  if (value === null) throw new MissingField(`without a valid "${key}"`);
  return value;
}

export function str(r: Json, key: string): string | null {
  const v = r[key];
  return typeof v === 'string' ? printable(v) : null;
}

/** SQL text: printable, its line breaks kept (the transcript folds them). */
export function sql(r: Json, key: string): string | null {
  const v = r[key];
  return typeof v === 'string' ? printableSql(v) : null;
}

export function num(r: Json, key: string): number | null {
  const v = r[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function bool(r: Json, key: string): boolean | null {
  const v = r[key];
  return typeof v === 'boolean' ? v : null;
}

export function objects(r: Json, key: string): Json[] {
  const v = r[key];
  return Array.isArray(v) ? v.filter((x): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x)) : [];
}

/** `transaction.id` may be null (no transaction) but, when present, must be a string. */
export function transactionIdOf(r: Json): string | null {
  const v = r['transaction.id'];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw new MissingField('with a "transaction.id" that is not a string');
  return printable(v);
}

export function attribution(r: Json): Attribution {
  return { requestId: str(r, 'request.id'), route: str(r, 'http.route') };
}

/** When the record was written, as the writer put it ('' when missing). */
export function timeOf(r: Json): string {
  return str(r, 'time') ?? '';
}

/** Every record names its session: one without is malformed. */
export function sessionIdOf(r: Json): string {
  return required(r, 'session.id', str(r, 'session.id'));
}
