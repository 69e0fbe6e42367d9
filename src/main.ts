#!/usr/bin/env node
/**
 * The txproxy command. The only module that reads argv, the environment and
 * files, installs signal handlers and exits; everything else gets what it
 * needs passed in.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { App, ListenError } from './app.js';
import {
  adminTokenFromFile,
  buildConfig,
  ConfigError,
  OPTIONS_HELP,
  parseCommandLine,
  parseConfigFile,
  settingOrigin,
  settingsFromEnv,
  USAGE,
} from './config/load.js';
import type { Config } from './config/schema.js';
import { parseUserlist, UserlistError, type Secret } from './auth/userlist.js';
import { startEmbeddedPostgres, type EmbeddedServer } from './embedded/embedded-postgres.js';
import type { WriterProblem } from './trace/buffered-writer.js';
import { TraceFileError } from './trace/trace-file.js';
import { ndjsonSink, openTraceWriter, type TraceSink } from './trace/trace-sink.js';
import { parseUpstreamUrl, UpstreamUrlError, type UpstreamTarget } from './upstream/target.js';
import { transcriptSink } from './trace-render/live-transcript.js';
import { colourStyle, plainStyle, wantsColour } from './trace-render/style.js';
import {
  followTrace,
  parseTraceCommandLine,
  renderTraceStream,
  TRACE_USAGE,
  TraceUsageError,
  type TraceOptions,
} from './trace-render/trace-command.js';

const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEFAULT_CONFIG_FILE = path.join(PACKAGE_ROOT, 'config', 'txproxy.yaml');

/** Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

interface LoadedConfig {
  config: Config;
  /** Where a key's value came from, for messages (`from --trace`). */
  originOf: (key: string) => string;
}

function loadConfig(argv: string[]): LoadedConfig {
  const commandLine = parseCommandLine(argv);
  if (commandLine.help) {
    process.stdout.write(`${USAGE}\n\n${OPTIONS_HELP}\n`);
    process.exit(0);
  }
  if (commandLine.version) {
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
    process.stdout.write(pkg.version + '\n');
    process.exit(0);
  }
  const configFile = commandLine.configFile ?? process.env.TXPROXY_CONFIG ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : null);
  let file: Record<string, unknown> = {};
  if (configFile !== null) {
    let text: string;
    try {
      text = readFileSync(configFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${configFile}: ${(err as Error).message}`);
    }
    file = parseConfigFile(text, configFile);
  }
  const env = settingsFromEnv(process.env);
  const source = configFile ?? 'configuration';
  return {
    config: withAdminTokenFile(buildConfig(file, env, commandLine.settings, source)),
    originOf: (key) => settingOrigin(key, env, commandLine.settings, source),
  };
}

/** The auth file (PgBouncer's userlist format); an unreadable or broken file is a configuration error naming auth.file. */
function readUserlist(file: string | null): Map<string, Secret> {
  if (file === null) return new Map();
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid value for 'auth.file': cannot read ${file}: ${(err as Error).message}`);
  }
  try {
    return parseUserlist(text);
  } catch (err) {
    if (!(err instanceof UserlistError)) throw err;
    throw new ConfigError(`invalid value for 'auth.file': ${file}, ${err.message}`);
  }
}

/**
 * Whether the trace is written as a transcript for people: when asked for,
 * or (`auto`) when it goes to stdout and stdout is a terminal. Files,
 * pipes and containers get NDJSON.
 */
function tracesAsTranscript(config: Config): boolean {
  const format = config.trace.format;
  if (format !== 'auto') return format === 'transcript';
  return config.trace.output === '-' && process.stdout.isTTY === true;
}

/**
 * Opens the trace output, checked like the rest of the configuration: a
 * path that cannot be written is a ConfigError naming the key.
 */
function openTrace(loaded: LoadedConfig, onProblem: (problem: WriterProblem) => void): TraceSink | null {
  const output = loaded.config.trace.output;
  if (output === 'off') return null;
  let writer;
  try {
    writer = openTraceWriter(output, onProblem);
  } catch (err) {
    if (!(err instanceof TraceFileError)) throw err;
    throw new ConfigError(`invalid value for 'trace.output' ${loaded.originOf('trace.output')}: ${err.message}; got '${output}'`);
  }
  if (!tracesAsTranscript(loaded.config)) return ndjsonSink(writer);
  const colour = wantsColour(output === '-' && process.stdout.isTTY === true, process.env);
  return transcriptSink(writer, colour ? colourStyle : plainStyle);
}

/** Reads admin.token_file into admin.token, so the secret can live in a file of its own. */
function withAdminTokenFile(config: Config): Config {
  const tokenFile = config.admin.token_file;
  if (tokenFile === null) return config;
  let text: string;
  try {
    text = readFileSync(tokenFile, 'utf8');
  } catch (err) {
    throw new ConfigError(`invalid value for 'admin.token_file': cannot read ${tokenFile}: ${(err as Error).message}`);
  }
  return { ...config, admin: { ...config.admin, token: adminTokenFromFile(text, tokenFile) } };
}

/** The admin token for `txproxy trace --follow`, read from the environment and checked as the proxy reads it. */
function adminTokenFromEnv(): string | null {
  const settings = Object.entries(settingsFromEnv(process.env)).filter(([key]) => key === 'admin.token' || key === 'admin.token_file');
  return withAdminTokenFile(buildConfig({}, Object.fromEntries(settings), {})).admin.token;
}

function tlsContextOf(config: Config): tls.SecureContext | null {
  if (config.tls.cert === null || config.tls.key === null) return null;
  try {
    return tls.createSecureContext({ cert: readFileSync(config.tls.cert), key: readFileSync(config.tls.key) });
  } catch (err) {
    throw new ConfigError(`invalid value for 'tls.cert'/'tls.key': ${(err as Error).message}`);
  }
}

/** `txproxy trace …`: prints a trace file, stdin or a live txproxy's /events as a transcript. */
async function traceCommand(argv: string[]): Promise<void> {
  let options: TraceOptions;
  let token: string | null;
  try {
    options = parseTraceCommandLine(argv);
    token = options.follow !== null ? adminTokenFromEnv() : null;
  } catch (err) {
    if (err instanceof TraceUsageError || err instanceof ConfigError) {
      process.stderr.write(`txproxy trace: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
  if (options.help) {
    process.stdout.write(TRACE_USAGE + '\n');
    return;
  }
  // `txproxy trace big.ndjson | head` closes the pipe early: that is not a failure.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const style = wantsColour(process.stdout.isTTY === true, process.env) ? colourStyle : plainStyle;
  const io = { out: process.stdout, err: process.stderr, style };
  if (options.follow !== null) {
    const follower = followTrace(options.follow, options.filter, io, { token });
    // Ctrl-C prints what is still open, then the process ends once its output is written.
    const stop = () => follower.stop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    return;
  }
  const name = options.input ?? '-';
  if (name === '-' && process.stdin.isTTY) {
    process.stderr.write('txproxy trace: reading a trace from standard input (end with Ctrl-D; --help for usage)\n');
  }
  const input = name === '-' ? process.stdin : createReadStream(name);
  try {
    await renderTraceStream(input, options.filter, io);
  } catch (err) {
    process.stderr.write(`txproxy trace: cannot read ${name === '-' ? 'standard input' : name}: ${(err as Error).message}\n`);
    process.exit(EXIT_FAILURE);
  }
}

/** The embedded server's own user, unless the auth file has it: txproxy knows its password, so `pool.mode: auto` pools it. */
function addEmbeddedUser(userlist: Map<string, Secret>, embedded: EmbeddedServer): void {
  if (!userlist.has(embedded.user)) userlist.set(embedded.user, { kind: 'plain', password: embedded.password });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'trace') return traceCommand(argv.slice(1));
  let loaded: LoadedConfig;
  let tlsContext: tls.SecureContext | null;
  let explicitTarget: UpstreamTarget | null = null;
  let userlist: Map<string, Secret>;
  try {
    loaded = loadConfig(argv);
    tlsContext = tlsContextOf(loaded.config);
    userlist = readUserlist(loaded.config.auth.file);
    if (loaded.config.upstream !== '') explicitTarget = parseUpstreamUrl(loaded.config.upstream);
  } catch (err) {
    if (err instanceof ConfigError || err instanceof UpstreamUrlError) {
      process.stderr.write(`txproxy: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
  const config = loaded.config;

  const log = pino({ name: 'txproxy', level: config.log.level }, pino.destination({ dest: 2, sync: true }));
  let embedded: EmbeddedServer | null = null;
  let trace: TraceSink | null;
  // The trace file is opened before anything starts: a path that cannot be
  // written stops txproxy at once, as a configuration mistake.
  try {
    trace = openTrace(loaded, (problem) => {
      if (problem.reason === 'reopen_failed') log.error({ error: problem.error }, 'trace file reopen failed: writing on to the file already open');
      else log.warn({ reason: problem.reason, error: problem.error, suppressed: problem.suppressed }, 'trace records dropped');
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`txproxy: ${err.message}\n`);
      process.exit(EXIT_USAGE);
    }
    throw err;
  }
  let app: App | null = null;

  // Signals are handled from the start: one that arrives while the embedded
  // server is still starting must still stop it and remove its data.
  let signalled: NodeJS.Signals | null = null;
  const stop = async () => {
    if (app !== null) {
      log.info({ signal: signalled, sessions: app.server.sessions.size, drainMs: config.drain_timeout }, 'shutting down: draining sessions');
      await app.stop();
    }
    await embedded?.stop();
    await trace?.flush();
    log.info('stopped');
    process.exit(0);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled !== null) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(EXIT_FAILURE);
    }
    signalled = signal;
    if (app !== null) {
      stop().catch((err: Error) => {
        log.fatal({ err: err.message }, 'shutdown failed');
        process.exit(EXIT_FAILURE);
      });
    }
    else log.info({ signal }, 'signal while starting: stopping as soon as started');
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // SIGUSR1 (as for nginx and PgBouncer) and SIGHUP reopen the trace file,
  // which log rotation has renamed (docs/traces.md#rotation).
  const reopenTrace = (signal: NodeJS.Signals) => {
    if (trace?.reopen === undefined || config.trace.output === '-') return;
    trace.reopen();
    log.info({ signal, path: config.trace.output }, 'reopening the trace file');
  };
  process.on('SIGUSR1', () => reopenTrace('SIGUSR1'));
  // SIGHUP also re-reads the configuration; the policies take effect without
  // a restart (each session from its next request). A broken file changes nothing.
  process.on('SIGHUP', () => {
    reopenTrace('SIGHUP');
    if (app === null) {
      log.warn('SIGHUP while starting: policies not reloaded');
      return;
    }
    let next: Config;
    try {
      next = loadConfig(argv).config;
    } catch (err) {
      log.error({ reason: (err as Error).message }, 'configuration reload failed: keeping the current policies');
      return;
    }
    app.reloadPolicies(next.policies);
    log.info({ enabled: next.policies !== undefined, rules: next.policies?.rules.map((r) => r.name) ?? [] }, 'policies reloaded');
    if (app.pools !== null) {
      const fixed = app.reloadPools(next.pool);
      if (fixed.length > 0) log.error({ keys: fixed }, 'pool settings not reloaded: these keys change only with a restart');
      else log.info('pool settings reloaded');
      reloadAuthFile(next.auth.file);
    }
  });
  // As PgBouncer's RELOAD: users added to the auth file log in from now on,
  // and removed ones no longer do; sessions already logged in go on. The
  // map is the one the logins read, so it is refilled in place. A file that
  // cannot be read or parsed changes nothing.
  const reloadAuthFile = (file: string | null) => {
    let next: Map<string, Secret>;
    try {
      next = readUserlist(file);
    } catch (err) {
      log.error({ reason: (err as Error).message }, 'auth file reload failed: keeping the users already loaded');
      return;
    }
    userlist.clear();
    for (const [user, secret] of next) userlist.set(user, secret);
    if (embedded !== null) addEmbeddedUser(userlist, embedded);
    log.info({ path: file, users: userlist.size }, 'auth file reloaded');
  };

  let target = explicitTarget;
  if (target === null) {
    log.info({ dataDir: config.embedded.data_dir ?? '(temporary)' }, 'no upstream configured: starting embedded PostgreSQL');
    try {
      embedded = await startEmbeddedPostgres({
        dataDir: config.embedded.data_dir,
        port: config.embedded.port,
        user: config.embedded.user,
        password: config.embedded.password,
      });
    } catch (err) {
      // Ctrl-C in a terminal also reaches PostgreSQL, which then fails to start: that is the requested stop.
      if (signalled !== null) return stop();
      throw err;
    }
    if (signalled !== null) return stop();
    target = parseUpstreamUrl(embedded.url + '?sslmode=disable');
  }

  if (embedded !== null) addEmbeddedUser(userlist, embedded);

  try {
    app = await App.start({ config, target, log, trace, tlsContext, userlist, embedded: embedded !== null });
  } catch (err) {
    // A ListenError names the address (the proxy's or the admin endpoint's).
    const message = err instanceof ListenError ? err.message : `cannot start: ${(err as Error).message}`;
    log.fatal({ err: message }, 'cannot start');
    process.stderr.write(`txproxy: ${message}\n`);
    await embedded?.stop();
    process.exit(EXIT_FAILURE);
  }
  if (signalled !== null) return stop();

  const user = embedded ? `${encodeURIComponent(embedded.user)}:${encodeURIComponent(embedded.password)}@` : target.user ? `${encodeURIComponent(target.user)}@` : '';
  const database = embedded ? 'postgres' : target.database ?? 'postgres';
  const [host] = config.listen.split(/:(?=\d+$)/);
  process.stderr.write(
    `txproxy listening on ${host}:${app.port}, proxying to ${target.host}:${target.port}${embedded ? ' (embedded PostgreSQL)' : ''}\n` +
      `DATABASE_URL=postgres://${user}${host}:${app.port}/${database}\n` +
      (app.pools === null
        ? 'pooling off: each client gets its own server connection (pool.mode)\n'
        : `pooling: ${config.pool.mode === 'transaction' ? 'transaction' : 'session'} mode, ${config.pool.default_pool_size} server connections per database and user; clients log in to txproxy (auth.type ${config.auth.type})\n`),
  );
  if (app.adminPort !== null) {
    const [adminHost] = config.http.split(/:(?=\d+$)/);
    const access = config.admin.token === null ? '' : '; every route but /healthz and /readyz requires the admin token';
    process.stderr.write(`admin: http://${adminHost}:${app.adminPort}/ (metrics at /metrics${access})\n`);
  }
  if (trace !== null && config.trace.output === '-' && config.trace.format === 'auto' && tracesAsTranscript(config)) {
    process.stderr.write('trace: a transcript on this terminal, one block per transaction (--trace-format ndjson for NDJSON records)\n');
  }
}

main().catch((err: Error) => {
  process.stderr.write(`txproxy: ${err.stack ?? err.message}\n`);
  process.exit(EXIT_FAILURE);
});
