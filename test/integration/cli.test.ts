/**
 * The txproxy command as users run it (the built CLI, spawned): flags
 * override TXPROXY_* variables, which override the YAML file given with
 * --config; every bad value exits with code 2 and one line that names the
 * key, where the value came from and what is allowed; --help and --version.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import pg from 'pg';
import { freePort } from '../../src/embedded/embedded-postgres.js';
import { runCli, startCli } from '../helpers/txproxy-cli.js';
import { startPostgres } from '../helpers/postgres.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'txproxy-cli-'));
t.teardown(() => rmSync(scratch, { recursive: true, force: true }));

function writeScratch(name: string, text: string): string {
  const file = path.join(scratch, name);
  writeFileSync(file, text);
  return file;
}

const tap = t;

/** Asserts a refused start: exit code 2, nothing on stdout, and `expected` as the whole of stderr. */
async function expectUsageError(t: Pick<typeof tap, 'equal' | 'match'>, args: string[], env: Record<string, string>, expected: string | RegExp): Promise<void> {
  const result = await runCli(args, env);
  t.equal(result.code, 2, 'exit code 2');
  t.equal(result.stdout, '');
  if (typeof expected === 'string') t.equal(result.stderr, expected);
  else t.match(result.stderr, expected);
}

t.test('settings: flags override TXPROXY_* variables, which override the config file', async (t) => {
  const postgres = await startPostgres();
  t.teardown(() => postgres.stop());
  const [filePort, envPort, flagPort] = [await freePort(), await freePort(), await freePort()];
  const traces = { file: path.join(scratch, 'from-file.ndjson'), env: path.join(scratch, 'from-env.ndjson'), flag: path.join(scratch, 'from-flag.ndjson') };
  const config = writeScratch(
    'precedence.yaml',
    [`listen: 127.0.0.1:${filePort}`, `upstream: ${postgres.url}?sslmode=disable`, 'http: "off"', 'trace:', `  output: ${traces.file}`, ''].join('\n'),
  );
  const env = { TXPROXY_LISTEN: `127.0.0.1:${envPort}`, TXPROXY_TRACE: traces.env };

  /** Starts txproxy, runs one query through it, stops it; returns where it listened. */
  const run = async (args: string[], environment: Record<string, string>) => {
    const cli = await startCli(['--config', config, ...args], environment);
    const client = new pg.Client({ host: '127.0.0.1', port: cli.port, user: postgres.user, password: postgres.password, database: 'postgres' });
    await client.connect();
    await client.query("SELECT 'through txproxy'");
    await client.end();
    cli.kill('SIGTERM');
    const exit = await cli.exited;
    t.equal(exit.code, 0);
    return cli.port;
  };
  const tracedQueries = (file: string) => {
    try {
      return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes("SELECT 'through txproxy'")).length;
    } catch {
      return 0;
    }
  };

  t.equal(await run([], {}), filePort, 'the file alone');
  t.same([tracedQueries(traces.file), tracedQueries(traces.env)], [1, 0], 'trace.output from the file');

  t.equal(await run([], env), envPort, 'a variable overrides the file');
  t.same([tracedQueries(traces.file), tracedQueries(traces.env)], [1, 1], 'TXPROXY_TRACE overrides trace.output');

  t.equal(await run(['--listen', `127.0.0.1:${flagPort}`, '--trace', traces.flag], env), flagPort, 'a flag overrides both');
  t.same([tracedQueries(traces.file), tracedQueries(traces.env), tracedQueries(traces.flag)], [1, 1, 1], '--trace overrides both');
});

t.test('bad values exit with code 2 and say which key, from where, and what is allowed', async (t) => {
  const valid = writeScratch('valid.yaml', 'http: "off"\n');
  const cases: [string, string[], Record<string, string>, string | RegExp][] = [
    [
      '--listen nonsense',
      ['--listen', 'nonsense'],
      {},
      "txproxy: invalid value for 'listen' from --listen: expected HOST:PORT such as 127.0.0.1:6432 (port 0 to 65535); got 'nonsense'\n",
    ],
    [
      '--listen with a port out of range',
      ['--listen', '127.0.0.1:70000'],
      {},
      "txproxy: invalid value for 'listen' from --listen: expected HOST:PORT such as 127.0.0.1:6432 (port 0 to 65535); got '127.0.0.1:70000'\n",
    ],
    [
      '--trace-sql bad',
      ['--trace-sql', 'bad'],
      {},
      "txproxy: invalid value for 'trace.sql' from --trace-sql: expected one of full, redacted, off; got 'bad'\n",
    ],
    [
      'TXPROXY_MAX_CLIENT_CONN=abc',
      [],
      { TXPROXY_MAX_CLIENT_CONN: 'abc' },
      "txproxy: invalid value for 'max_client_conn' from TXPROXY_MAX_CLIENT_CONN: expected a whole number of at least 1; got 'abc'\n",
    ],
    [
      'TXPROXY_DRAIN_TIMEOUT=soon',
      [],
      { TXPROXY_DRAIN_TIMEOUT: 'soon' },
      "txproxy: invalid value for 'drain_timeout' from TXPROXY_DRAIN_TIMEOUT: expected a duration such as 500ms, 30s, 5m, or a number of milliseconds; got 'soon'\n",
    ],
    [
      'a flag wins over a bad variable',
      ['--config', valid, '--max-client-conn', '0'],
      { TXPROXY_MAX_CLIENT_CONN: 'abc' },
      "txproxy: invalid value for 'max_client_conn' from --max-client-conn: expected a whole number of at least 1; got 0\n",
    ],
    [
      'a bad --upstream URL, its password masked',
      ['--upstream', 'postgres://app:s3cret@[bad/db'],
      {},
      "txproxy: invalid value for 'upstream' from --upstream: not a valid URL; expected postgres://[user[:password]@]host[:port][/database][?sslmode=disable|allow|prefer|require|verify-ca|verify-full]; got 'postgres://app:***@[bad/db'\n",
    ],
    [
      'a password holding @ is masked whole',
      ['--upstream', 'postgres://app:p@ss@[bad/db'],
      {},
      /got 'postgres:\/\/app:\*\*\*@\[bad\/db'\n$/,
    ],
    [
      'an --upstream URL of another scheme',
      ['--upstream', 'mysql://db:3306'],
      {},
      /^txproxy: invalid value for 'upstream' from --upstream: the scheme must be postgres:\/\/ or postgresql:\/\/, not mysql:\/\/; expected postgres:\/\//,
    ],
    [
      'an --upstream URL with an unknown sslmode',
      ['--upstream', 'postgres://db/app?sslmode=sometimes'],
      {},
      "txproxy: invalid value for 'upstream' from --upstream: sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full, not 'sometimes'; got 'postgres://db/app?sslmode=sometimes'\n",
    ],
    [
      'an unknown flag',
      ['--bogus'],
      {},
      /^txproxy: Unknown option '--bogus'\nusage: txproxy .*\n[\s\S]*Run 'txproxy --help' to see every option\.\n$/,
    ],
    ['a missing config file', ['--config', path.join(scratch, 'absent.yaml')], {}, /^txproxy: cannot read config file .*absent\.yaml: ENOENT/],
  ];
  for (const [name, args, env, expected] of cases) {
    await t.test(name, (t) => expectUsageError(t, args, env, expected));
  }
});

t.test('config file mistakes exit with code 2 and name the file and the key', async (t) => {
  const unknownKey = writeScratch('unknown-key.yaml', 'listen: 127.0.0.1:6432\nlisten_port: 6432\n');
  await expectUsageError(
    t,
    ['--config', unknownKey],
    {},
    `txproxy: unknown key 'listen_port' in ${unknownKey}; allowed: listen, upstream, http, max_client_conn, max_pending_handshakes, handshake_timeout, max_message_length, connect_timeout, settle_timeout, read_buffer, drain_timeout, tls, embedded, trace, log, policies, metrics, admin, lock_monitor, pool, auth, otel\n`,
  );

  const nestedUnknown = writeScratch('nested-unknown.yaml', 'trace:\n  colour: yes\n');
  await expectUsageError(
    t,
    ['--config', nestedUnknown],
    {},
    `txproxy: unknown key 'trace.colour' in ${nestedUnknown}; allowed in 'trace': output, sql, max_sql_length, max_tag_length, format, keep\n`,
  );

  const wrongValue = writeScratch('wrong-value.yaml', 'max_client_conn: many\n');
  await expectUsageError(
    t,
    ['--config', wrongValue],
    {},
    `txproxy: invalid value for 'max_client_conn' in ${wrongValue}: expected a whole number of at least 1; got 'many'\n`,
  );

  const malformed = writeScratch('malformed.yaml', 'listen: [127.0.0.1\ntrace:\n  sql: full\n');
  await expectUsageError(t, ['--config', malformed], {}, new RegExp(`^txproxy: ${malformed.replace(/[.]/g, '\\.')}: invalid YAML: .*line \\d+, column \\d+`));

  const notAMapping = writeScratch('list.yaml', '- listen\n- upstream\n');
  await expectUsageError(t, ['--config', notAMapping], {}, `txproxy: ${notAMapping}: expected a mapping of settings at the top level\n`);

  const twoMistakes = writeScratch('two.yaml', 'listen: here\ntrace:\n  sql: some\n');
  await expectUsageError(
    t,
    ['--config', twoMistakes],
    {},
    `txproxy: 2 configuration errors:\n  invalid value for 'listen' in ${twoMistakes}: expected HOST:PORT such as 127.0.0.1:6432 (port 0 to 65535); got 'here'\n  invalid value for 'trace.sql' in ${twoMistakes}: expected one of full, redacted, off; got 'some'\n`,
  );
});

t.test('a trace path that cannot be written exits with code 2 at once, naming the key and why', async (t) => {
  const aFile = writeScratch('a-file', 'not a directory\n');
  // Root writes anywhere but in sysfs; others not into a directory without write permission.
  let readOnlyDir: string | null = path.join(scratch, 'read-only');
  if (process.getuid?.() === 0) readOnlyDir = existsSync('/sys/kernel') ? '/sys' : null;
  else {
    mkdirSync(readOnlyDir);
    chmodSync(readOnlyDir, 0o555);
  }
  const cases: [string, string[], Record<string, string>, string | RegExp][] = [
    // Node 20's recursive mkdir spun at 100 % CPU here, deaf to SIGTERM.
    [
      'under /proc',
      ['--trace', '/proc/nope/x'],
      {},
      "txproxy: invalid value for 'trace.output' from --trace: cannot create the directory '/proc/nope': no such file or directory (ENOENT); got '/proc/nope/x'\n",
    ],
    ['a directory', ['--trace', scratch], {}, `txproxy: invalid value for 'trace.output' from --trace: '${scratch}' is a directory; expected a file name; got '${scratch}'\n`],
    [
      'a path under a file',
      [],
      { TXPROXY_TRACE: path.join(aFile, 'trace.ndjson') },
      `txproxy: invalid value for 'trace.output' from TXPROXY_TRACE: '${aFile}' is not a directory; got '${path.join(aFile, 'trace.ndjson')}'\n`,
    ],
  ];
  if (readOnlyDir !== null) {
    const file = path.join(readOnlyDir, 'trace.ndjson');
    cases.push([
      'a directory without write permission',
      ['--trace', file],
      {},
      `txproxy: invalid value for 'trace.output' from --trace: cannot open '${file}' for appending: permission denied (EACCES); got '${file}'\n`,
    ]);
  }
  for (const [name, args, env, expected] of cases) {
    await t.test(name, async (t) => {
      const started = Date.now();
      // Nothing listens on port 1: the trace path is checked before any connection is tried.
      await expectUsageError(t, ['--upstream', 'postgres://127.0.0.1:1/postgres', '--http', 'off', '--listen', '127.0.0.1:0', ...args], env, expected);
      t.ok(Date.now() - started < 10_000, 'within seconds');
    });
  }
});

t.test('--help lists every option; --version prints the package version', async (t) => {
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.equal(help.stderr, '');
  for (const flag of ['--config FILE', '--listen HOST:PORT', '--upstream URL', '--http HOST:PORT|off', '--trace FILE|-|off', '--trace-sql full|redacted|off', '--trace-format auto|ndjson|transcript', '--max-client-conn N', '--log-level LEVEL', '--help', '--version']) {
    t.match(help.stdout, flag, `--help mentions ${flag}`);
  }
  t.match(help.stdout, /TXPROXY_LISTEN/);

  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string };
  const version = await runCli(['--version']);
  t.same([version.code, version.stdout, version.stderr], [0, `${pkg.version}\n`, '']);
});
