/**
 * Brings a server's session settings to a client's: the one Query that
 * sets what differs and resets what the client never set, nothing else.
 * set_config(name, value, false) takes the value as the raw string SET
 * would (a list such as `a, b` stays a list); RESET returns a setting to
 * the value the backend started with.
 */
import { sqlLiteral } from '../sql/literal.js';
import type { Setting } from './startup-settings.js';

/**
 * The settings a client's session has: its startup parameters (which a
 * pooled link gets with set_config, source 'session'), overlaid with what
 * the probe read from its server. After the client's RESET (or RESET ALL,
 * DISCARD ALL) the server returns to the link's own startup value, where
 * PostgreSQL would return to the client's: a name the probe no longer
 * lists keeps its startup value here, and carrying these settings onto the
 * same link puts it back.
 */
export function clientSettings(startup: readonly Setting[], probed: ReadonlyMap<string, string>): Map<string, string> {
  const settings = new Map<string, string>(startup);
  for (const [name, value] of probed) settings.set(name, value);
  return settings;
}

/** Whether the link already has the client's settings: asked before each transaction, so it allocates nothing. */
export function sameSettings(wanted: ReadonlyMap<string, string>, current: ReadonlyMap<string, string>): boolean {
  if (wanted.size !== current.size) return false;
  for (const [name, value] of wanted) if (current.get(name) !== value) return false;
  return true;
}

/** `null` when the link already has the client's settings. */
export function settingsCarrySql(wanted: ReadonlyMap<string, string>, current: ReadonlyMap<string, string>): string | null {
  if (sameSettings(wanted, current)) return null;
  const sets: string[] = [];
  const resets: string[] = [];
  for (const [name, value] of wanted) {
    if (current.get(name) !== value) sets.push(`pg_catalog.set_config(${sqlLiteral(name)}, ${sqlLiteral(value)}, false)`);
  }
  for (const name of current.keys()) {
    if (!wanted.has(name)) resets.push(`RESET ${quoteSettingName(name)}`);
  }
  const statements = [...resets];
  if (sets.length > 0) statements.push(`SELECT ${sets.join(', ')}`);
  return statements.length === 0 ? null : statements.join('; ');
}

/** A setting name for RESET: each dotted part a quoted identifier (`"my"."option"`), as the grammar reads it. */
function quoteSettingName(name: string): string {
  return name
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}
