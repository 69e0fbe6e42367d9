/**
 * A client's startup parameters as settings to apply to a pooled server
 * connection. A fresh backend applies each startup parameter, and each
 * `-c name=value` / `--name=value` of `options`, as a setting of source
 * "client" (postgres.c process_postgres_switches); on a reused connection
 * txproxy does the same with `set_config(name, value, false)`, which takes
 * the value as the same raw string (a list such as `search_path=a,b` stays
 * a list), in one simple Query: the server rejects a bad value with the same
 * error it would have given at startup.
 */
import { sqlLiteral } from '../sql/literal.js';

/** Parameters that choose the connection rather than set anything. */
const NOT_SETTINGS = new Set(['user', 'database', 'replication', 'options']);

export type Setting = [name: string, value: string];

/** The settings a StartupMessage asks for, in the order a backend applies them (options first). */
export function startupSettings(params: Record<string, string>): Setting[] {
  const settings: Setting[] = params.options === undefined ? [] : optionSettings(params.options);
  for (const [name, value] of Object.entries(params)) {
    // Protocol extensions (`_pq_.…`) are negotiated, not set.
    if (!NOT_SETTINGS.has(name) && !name.startsWith('_pq_.')) settings.push([name, value]);
  }
  return settings;
}

/**
 * `-c name=value` and `--name=value` switches of the `options` parameter:
 * words split on unescaped white space, a backslash escaping the next
 * character (pg_split_opts). Other switches are the server's business and
 * are not carried to a pooled connection.
 */
export function optionSettings(options: string): Setting[] {
  const words = splitOptions(options);
  const settings: Setting[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    let assignment: string | null = null;
    if (word === '-c' && i + 1 < words.length) assignment = words[++i];
    else if (word.startsWith('-c') && word.length > 2) assignment = word.slice(2);
    else if (word.startsWith('--')) assignment = word.slice(2);
    if (assignment === null) continue;
    const eq = assignment.indexOf('=');
    if (eq <= 0) continue;
    // As ParseLongOption: dashes in the name are underscores.
    settings.push([assignment.slice(0, eq).replace(/-/g, '_'), assignment.slice(eq + 1)]);
  }
  return settings;
}

function splitOptions(options: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const c = options[i];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r') {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < options.length) current += options[++i];
    else current += c;
  }
  if (inWord) words.push(current);
  return words;
}

/** One statement applying every setting; empty when there is none. */
export function settingsSql(settings: Setting[]): string {
  return settings.map(([name, value]) => `SELECT pg_catalog.set_config(${sqlLiteral(name)}, ${sqlLiteral(value)}, false);`).join('');
}
