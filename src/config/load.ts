/**
 * Builds the configuration from its three sources, each overriding the one
 * before: the YAML file, then `TXPROXY_*` environment variables, then command
 * line flags. Pure: the caller reads files, env and argv.
 */
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { configSchema, type Config } from './schema.js';

/** A configuration mistake: names the key and what is allowed. Exit code 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Environment variables and the config key each one sets. */
export const ENV_KEYS: Record<string, string> = {
  TXPROXY_LISTEN: 'listen',
  TXPROXY_UPSTREAM: 'upstream',
  TXPROXY_HTTP: 'http',
  TXPROXY_TRACE: 'trace.output',
  TXPROXY_TRACE_SQL: 'trace.sql',
  TXPROXY_MAX_CLIENT_CONN: 'max_client_conn',
  TXPROXY_MAX_MESSAGE_LENGTH: 'max_message_length',
  TXPROXY_CONNECT_TIMEOUT: 'connect_timeout',
  TXPROXY_DRAIN_TIMEOUT: 'drain_timeout',
  TXPROXY_TLS_CERT: 'tls.cert',
  TXPROXY_TLS_KEY: 'tls.key',
  TXPROXY_DATA_DIR: 'embedded.data_dir',
  TXPROXY_EMBEDDED_PORT: 'embedded.port',
  TXPROXY_LOG_LEVEL: 'log.level',
};

/** Keys whose values are numbers when given as text (env, flags). */
const NUMERIC_KEYS = new Set(['max_client_conn', 'max_message_length', 'embedded.port']);

export const USAGE = `usage: txproxy [--config FILE] [--listen HOST:PORT] [--upstream URL] [--http HOST:PORT|off]
               [--trace FILE|-|off] [--trace-sql full|redacted|off] [--max-client-conn N]
       txproxy trace [FILE|-] [--follow URL] [--session ID] [--route R] [--min-ms N]`;

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
        'max-client-conn': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message}\n${USAGE}`);
  }
  const v = parsed.values;
  const settings: Record<string, string> = {};
  if (v.listen !== undefined) settings.listen = v.listen;
  if (v.upstream !== undefined) settings.upstream = v.upstream;
  if (v.http !== undefined) settings.http = v.http;
  if (v.trace !== undefined) settings['trace.output'] = v.trace;
  if (v['trace-sql'] !== undefined) settings['trace.sql'] = v['trace-sql'];
  if (v['max-client-conn'] !== undefined) settings.max_client_conn = v['max-client-conn'];
  if (v['log-level'] !== undefined) settings['log.level'] = v['log-level'];
  return { configFile: v.config ?? null, settings, help: v.help === true, version: v.version === true };
}

/** Reads `TXPROXY_*` variables into settings by config key. */
export function settingsFromEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const settings: Record<string, string> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const value = env[name];
    if (value !== undefined && value !== '') settings[key] = value;
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

/** Merges file, env and flags (later wins) and validates the result. */
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
    const lines = result.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(top level)';
      const message = issue.code === 'unrecognized_keys' ? `unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}` : issue.message;
      return `${source}: invalid value for '${key}': ${message}`;
    });
    throw new ConfigError(lines.join('\n'));
  }
  return result.data;
}

function coerce(key: string, value: string): unknown {
  // A number given as text stays text when malformed, so the error names the key.
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
