/**
 * SQL text as the admin API shows it: the `trace.sql` setting applies here
 * as it does to traces, so the endpoint never reveals more than the trace.
 */
import type { StatementInfo } from '../sql/classify.js';
import type { TraceText } from '../trace/trace-text.js';

export type ShowSql = (text: string, info?: StatementInfo) => string | null;

export function showSql(traceText: TraceText): ShowSql {
  return (text, info) => traceText.sql(text, info) ?? null;
}
