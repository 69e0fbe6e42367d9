/**
 * SQL text as the admin API shows it: the `trace.sql` setting applies here
 * as it does to traces, so the endpoint never reveals more than the trace.
 */
import { redactSql } from '../sql/redact.js';
import type { SqlTraceMode } from '../trace/trace-writer.js';

export type ShowSql = (text: string) => string | null;

export function showSql(mode: SqlTraceMode): ShowSql {
  if (mode === 'full') return (text) => text;
  if (mode === 'redacted') return redactSql;
  return () => null;
}
