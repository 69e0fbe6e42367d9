/**
 * A string as an SQL literal for txproxy's own statements: an escape
 * string (E'…'), so it means the same whatever the session's
 * standard_conforming_strings says.
 */
export function sqlLiteral(value: string): string {
  return `E'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}
