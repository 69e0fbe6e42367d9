/**
 * Builds the configuration from its three sources, each overriding the one
 * before: the YAML file, then `TXPROXY_*` environment variables, then command
 * line flags. Pure: the caller reads files, env and argv.
 */
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { OTEL_ENV_KEYS } from '../otel/otel-config.js';
import { DATABASE_OVERRIDE_KEYS, USER_OVERRIDE_KEYS } from '../pool/pool-config.js';
import { ADMIN_TOKEN, adminToken, configSchema, type Config } from './schema.js';

/** A configuration mistake: names the key and what is allowed. Exit code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** `TXPROXY_POOL_<KEY>` for each top-level key of the `pool:` section (the per-database and per-user maps have none). */
const POOL_ENV_KEYS: Record<string, string> = Object.fromEntries(
  [
    'mode',
    'max_prepared_statements',
    'session_state',
    'default_pool_size',
    'min_pool_size',
    'reserve_pool_size',
    'reserve_pool_timeout',
    'max_db_connections',
    'max_user_connections',
    'server_idle_timeout',
    'server_lifetime',
    'server_connect_timeout',
    'server_login_retry',
    'query_wait_timeout',
    'server_reset_query',
    'server_check_query',
    'server_check_delay',
  ].map((key) => [`TXPROXY_POOL_${key.toUpperCase()}`, `pool.${key}`]),
);

/** Environment variables and the config key each one sets. */
export const ENV_KEYS: Record<string, string> = {
  TXPROXY_LISTEN: 'listen',
  TXPROXY_UPSTREAM: 'upstream',
  TXPROXY_HTTP: 'http',
  TXPROXY_ADMIN_TOKEN: 'admin.token',
  TXPROXY_ADMIN_TOKEN_FILE: 'admin.token_file',
  TXPROXY_ADMIN_MAX_EVENT_SUBSCRIBERS: 'admin.max_event_subscribers',
  TXPROXY_TRACE: 'trace.output',
  TXPROXY_TRACE_SQL: 'trace.sql',
  TXPROXY_TRACE_MAX_SQL_LENGTH: 'trace.max_sql_length',
  TXPROXY_TRACE_MAX_TAG_LENGTH: 'trace.max_tag_length',
  TXPROXY_TRACE_FORMAT: 'trace.format',
  TXPROXY_TRACE_KEEP_SAMPLE: 'trace.keep.sample',
  TXPROXY_TRACE_KEEP_SLOWER_THAN: 'trace.keep.slower_than',
  TXPROXY_MAX_CLIENT_CONN: 'max_client_conn',
  TXPROXY_MAX_PENDING_HANDSHAKES: 'max_pending_handshakes',
  TXPROXY_HANDSHAKE_TIMEOUT: 'handshake_timeout',
  TXPROXY_MAX_MESSAGE_LENGTH: 'max_message_length',
  TXPROXY_CONNECT_TIMEOUT: 'connect_timeout',
  TXPROXY_SETTLE_TIMEOUT: 'settle_timeout',
  TXPROXY_READ_BUFFER: 'read_buffer',
  TXPROXY_DRAIN_TIMEOUT: 'drain_timeout',
  TXPROXY_TLS_CERT: 'tls.cert',
  TXPROXY_TLS_KEY: 'tls.key',
  TXPROXY_DATA_DIR: 'embedded.data_dir',
  TXPROXY_EMBEDDED_PORT: 'embedded.port',
  TXPROXY_LOG_LEVEL: 'log.level',
  ...POOL_ENV_KEYS,
  TXPROXY_AUTH_TYPE: 'auth.type',
  TXPROXY_AUTH_FILE: 'auth.file',
  TXPROXY_AUTH_USER: 'auth.user',
  TXPROXY_AUTH_QUERY: 'auth.query',
  TXPROXY_AUTH_QUERY_CACHE_TTL: 'auth.query_cache_ttl',
  // The standard OpenTelemetry variables, as any OpenTelemetry SDK reads them.
  ...OTEL_ENV_KEYS,
};

/** Command-line flags and the config key each one sets. */
const FLAG_KEYS: Record<string, string> = {
  listen: 'listen',
  upstream: 'upstream',
  http: 'http',
  trace: 'trace.output',
  'trace-sql': 'trace.sql',
  'trace-format': 'trace.format',
  'max-client-conn': 'max_client_conn',
  'log-level': 'log.level',
};

/** Keys whose values are numbers when given as text (env, flags). */
const NUMERIC_KEYS = new Set([
  'max_client_conn',
  'max_pending_handshakes',
  'max_message_length',
  'embedded.port',
  'trace.max_sql_length',
  'trace.max_tag_length',
  'pool.default_pool_size',
  'pool.min_pool_size',
  'pool.reserve_pool_size',
  'pool.max_db_connections',
  'pool.max_user_connections',
  'pool.max_prepared_statements',
  'admin.max_event_subscribers',
]);

export const USAGE = `usage: txproxy [--config FILE] [--listen HOST:PORT] [--upstream URL] [--http HOST:PORT|off]
               [--trace FILE|-|off] [--trace-sql full|redacted|off] [--trace-format auto|ndjson|transcript]
               [--max-client-conn N]
       txproxy trace [FILE|-] [--follow URL] [--session ID] [--route R] [--min-ms N]`;

/** `txproxy --help`: every flag, the variable that sets the same key, and the default. */
export const OPTIONS_HELP = `Options (flags override TXPROXY_* variables, which override the config file):
  -c, --config FILE           YAML config file (TXPROXY_CONFIG; default config/txproxy.yaml)
      --listen HOST:PORT      where clients connect (TXPROXY_LISTEN; default 127.0.0.1:6432)
      --upstream URL          postgres://[user[:password]@]host[:port][/database][?sslmode=…]
                              (TXPROXY_UPSTREAM; default: start an embedded PostgreSQL)
      --http HOST:PORT|off    admin HTTP endpoint (TXPROXY_HTTP; default 127.0.0.1:9930)
      --trace FILE|-|off      trace output, - for stdout (TXPROXY_TRACE; default -)
      --trace-sql full|redacted|off
                              SQL text in traces (TXPROXY_TRACE_SQL; default full)
      --trace-format auto|ndjson|transcript
                              NDJSON records, or a transcript for people; auto: the
                              transcript on a terminal (TXPROXY_TRACE_FORMAT; default auto)
      --max-client-conn N     client connections allowed (TXPROXY_MAX_CLIENT_CONN; default 1000)
      --log-level LEVEL       fatal, error, warn, info, debug, trace or silent (TXPROXY_LOG_LEVEL; default info)
  -h, --help                  show this help
      --version               print the version
OpenTelemetry span export: set OTEL_EXPORTER_OTLP_ENDPOINT (the other OTEL_* variables: docs/opentelemetry.md).
Every setting, with its variable: docs/configuration.md. Exit codes: 0 stopped, 1 runtime failure, 2 bad usage or configuration.`;

export interface CommandLine {
  configFile: string | null;
  /** Settings given as flags, by config key. */
  settings: Record<string, string>;
  help: boolean;
  version: boolean;
}

export function parseCommandLine(argv: string[]): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        upstream: { type: 'string' },
        http: { type: 'string' },
        trace: { type: 'string' },
        'trace-sql': { type: 'string' },
        'trace-format': { type: 'string' },
        'max-client-conn': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${USAGE}\nRun 'txproxy --help' to see every option.`);
  }
  const v = parsed.values;
  const settings: Record<string, string> = {};
  for (const [flag, key] of Object.entries(FLAG_KEYS)) {
    const value = v[flag as keyof typeof v];
    if (typeof value === 'string') settings[key] = value;
  }
  return { configFile: v.config ?? null, settings, help: v.help === true, version: v.version === true };
}

/**
 * Variables read even when set but empty: an empty secret is a mistake
 * (an unset shell variable, a missing secret) that must stop txproxy, not
 * leave the admin endpoint open.
 */
const EMPTY_IS_A_VALUE = new Set(['TXPROXY_ADMIN_TOKEN', 'TXPROXY_ADMIN_TOKEN_FILE']);

/** Reads `TXPROXY_*` variables into settings by config key. */
export function settingsFromEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && (value !== '' || EMPTY_IS_A_VALUE.has(name))) settings[key] = value;
  }
  return settings;
}

/** Parses the YAML text of a config file into a plain object. */
export function parseConfigFile(text: string, fileName: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`${fileName}: invalid YAML: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(`${fileName}: expected a mapping of settings at the top level`);
  return doc as Record<string, unknown>;
}

/**
 * Merges file, env and flags (later wins) and validates the result. Each
 * mistake becomes one line naming the key, where its value came from (the
 * flag, the variable or the file `source`), what is allowed, and the value.
 */
export function buildConfig(
  file: Record<string, unknown>,
  env: Record<string, string>,
  flags: Record<string, string>,
  source = 'configuration',
): Config {
  const merged: Record<string, unknown> = structuredClone(file);
  for (const [key, value] of [...Object.entries(env), ...Object.entries(flags)]) setPath(merged, key, coerce(key, value));
  const result = configSchema.safeParse(merged);
  if (!result.success) {
    const origin = (key: string) => settingOrigin(key, env, flags, source);
    const lines = result.error.issues.map((issue) => describeIssue(issue, merged, origin, source));
    const problems = [...new Set(lines)];
    throw new ConfigError(problems.length === 1 ? problems[0] : `${problems.length} configuration errors:\n  ${problems.join('\n  ')}`);
  }
  return result.data;
}

/** Where a setting's value came from, for messages: `from --trace`, `from TXPROXY_TRACE`, `in FILE`. */
export function settingOrigin(key: string, env: Record<string, string>, flags: Record<string, string>, source = 'configuration'): string {
  if (key in flags) return `from --${flagOf(key)}`;
  if (key in env) return `from ${envNameOf(key)}`;
  return `in ${source}`;
}

function describeIssue(issue: z.core.$ZodIssue, input: Record<string, unknown>, origin: (key: string) => string, source: string): string {
  const key = issue.path.join('.');
  if (issue.code === 'unrecognized_keys') {
    const where = key === '' ? '' : `${key}.`;
    const unknown = issue.keys.map((k) => `'${where}${k}'`).join(', ');
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${unknown} in ${source}; allowed${key === '' ? '' : ` in '${key}'`}: ${allowedKeys(issue.path).join(', ')}`;
  }
  const value = valueAt(input, issue.path);
  const shown = value === undefined ? '' : `; got ${show(key, value)}`;
  return `invalid value for '${key}' ${origin(key)}: ${issue.message}${shown}`;
}

/** The keys a (nested) section of the configuration accepts. */
function allowedKeys(path: PropertyKey[]): string[] {
  if (path.length === 0) return Object.keys(configSchema.shape);
  // Overrides under a database or user name the defaults do not have.
  if (path.length === 3 && path[0] === 'pool' && path[1] === 'databases') return DATABASE_OVERRIDE_KEYS;
  if (path.length === 3 && path[0] === 'pool' && path[1] === 'users') return USER_OVERRIDE_KEYS;
  const defaults = configSchema.parse({}) as Record<string, unknown>;
  const section = valueAt(defaults, path);
  return typeof section === 'object' && section !== null ? Object.keys(section) : [];
}

function valueAt(root: Record<string, unknown>, path: PropertyKey[]): unknown {
  let node: unknown = root;
  for (const part of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<PropertyKey, unknown>)[part];
  }
  return node;
}

/** Keys whose values never appear in error messages. */
const SECRET_KEYS = new Set(['embedded.password', 'admin.token']);

/** The offending value for the message, with any password or token masked. */
function show(key: string, value: unknown): string {
  if (SECRET_KEYS.has(key)) return '(hidden)';
  if (typeof value !== 'string') return JSON.stringify(value) ?? String(value);
  const masked = key === 'upstream' ? value.replace(/^([a-z]+:\/\/[^:@/]*):[^/]*@/i, '$1:***@') : value;
  return `'${masked}'`;
}

function flagOf(key: string): string {
  return Object.entries(FLAG_KEYS).find(([, k]) => k === key)?.[0] ?? key;
}

function envNameOf(key: string): string {
  return Object.entries(ENV_KEYS).find(([, k]) => k === key)?.[0] ?? key;
}

function coerce(key: string, value: string): unknown {
  // A number given as text stays text when malformed, so the error names the key.
  // (trace.keep.sample reads its own text: 0.01 or 1%.)
  return NUMERIC_KEYS.has(key) && /^\d+$/.test(value) ? Number(value) : value;
}

function setPath(target: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts[parts.length - 1]] = value;
}

/**
 * The admin token from the text of `admin.token_file`: the whole file, less
 * the line break an editor or `echo` leaves at its end. The content never
 * appears in the error.
 */
export function adminTokenFromFile(text: string, fileName: string): string {
  const token = text.replace(/\s+$/, '');
  if (!adminToken.safeParse(token).success) {
    throw new ConfigError(`invalid value for 'admin.token_file': ${fileName} must hold only the token, ${ADMIN_TOKEN}`);
  }
  return token;
}
