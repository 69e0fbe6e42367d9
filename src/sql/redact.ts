/**
 * Blanks out literals so traces can be kept without the personal data that
 * SQL text may carry: strings, dollar-quoted bodies and numbers become `?`.
 * Identifiers, keywords, `$n` parameters and structure stay.
 */
import { lex, TokenKind } from './lexer.js';

export function redactSql(sql: string): string {
  let out = '';
  let copied = 0;
  lex(sql, (kind, start, end) => {
    if (kind === TokenKind.String || kind === TokenKind.DollarString || kind === TokenKind.Number) {
      out += sql.slice(copied, start) + '?';
      copied = end;
    } else if (kind === TokenKind.Comment && sql.charCodeAt(start) === 45 /* - */) {
      // A line comment can hold anything; keep its marker only.
      out += sql.slice(copied, start) + '--';
      copied = end;
    }
  });
  return out + sql.slice(copied);
}
