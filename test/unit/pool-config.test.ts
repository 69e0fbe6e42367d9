/**
 * The `pool:` configuration section: defaults, TXPROXY_POOL_* variables,
 * overrides, and each bad value refused naming its key.
 */
import t from 'tap';
import { buildConfig, ConfigError, settingsFromEnv } from '../../src/config/load.js';
import { poolSettingsFor } from '../../src/pool/pool-config.js';

t.test('defaults are PgBouncer’s, durations in milliseconds', async (t) => {
  t.same(buildConfig({}, {}, {}).pool, {
    mode: 'auto',
    max_prepared_statements: 200,
    session_state: 'pin',
    default_pool_size: 20,
    min_pool_size: 0,
    reserve_pool_size: 0,
    reserve_pool_timeout: 5000,
    max_db_connections: 0,
    max_user_connections: 0,
    server_idle_timeout: 600_000,
    server_lifetime: 3_600_000,
    server_connect_timeout: 15_000,
    server_login_retry: 15_000,
    query_wait_timeout: 120_000,
    server_reset_query: 'DISCARD ALL',
    server_check_query: 'select 1',
    server_check_delay: 30_000,
    databases: {},
    users: {},
  });
});

t.test('every top-level key has a TXPROXY_POOL_* variable', async (t) => {
  const env = {
    TXPROXY_POOL_MODE: 'session',
    TXPROXY_POOL_MAX_PREPARED_STATEMENTS: '50',
    TXPROXY_POOL_SESSION_STATE: 'refuse',
    TXPROXY_POOL_DEFAULT_POOL_SIZE: '5',
    TXPROXY_POOL_MIN_POOL_SIZE: '1',
    TXPROXY_POOL_RESERVE_POOL_SIZE: '2',
    TXPROXY_POOL_RESERVE_POOL_TIMEOUT: '1s',
    TXPROXY_POOL_MAX_DB_CONNECTIONS: '50',
    TXPROXY_POOL_MAX_USER_CONNECTIONS: '40',
    TXPROXY_POOL_SERVER_IDLE_TIMEOUT: '1m',
    TXPROXY_POOL_SERVER_LIFETIME: '1h',
    TXPROXY_POOL_SERVER_CONNECT_TIMEOUT: '3s',
    TXPROXY_POOL_SERVER_LOGIN_RETRY: '500ms',
    TXPROXY_POOL_QUERY_WAIT_TIMEOUT: '0',
    TXPROXY_POOL_SERVER_RESET_QUERY: 'DISCARD ALL; RESET ALL',
    TXPROXY_POOL_SERVER_CHECK_QUERY: '',
    TXPROXY_POOL_SERVER_CHECK_DELAY: '10s',
  };
  const { databases, users, ...pool } = buildConfig({}, settingsFromEnv(env), {}).pool;
  t.same(pool, {
    mode: 'session',
    max_prepared_statements: 50,
    session_state: 'refuse',
    default_pool_size: 5,
    min_pool_size: 1,
    reserve_pool_size: 2,
    reserve_pool_timeout: 1000,
    max_db_connections: 50,
    max_user_connections: 40,
    server_idle_timeout: 60_000,
    server_lifetime: 3_600_000,
    server_connect_timeout: 3000,
    server_login_retry: 500,
    query_wait_timeout: 0,
    server_reset_query: 'DISCARD ALL; RESET ALL',
    // An empty variable counts as unset, as for every TXPROXY_* variable.
    server_check_query: 'select 1',
    server_check_delay: 10_000,
  });
  t.same([databases, users], [{}, {}]);
});

t.test('overrides per database and per user', async (t) => {
  const config = buildConfig(
    { pool: { default_pool_size: 10, databases: { app: { pool_size: 4, max_db_connections: 8, server_lifetime: '10m' } }, users: { etl: { pool_size: 2, query_wait_timeout: '5m' } } } },
    {},
    {},
  ).pool;
  t.match(poolSettingsFor(config, 'app', 'web'), { pool_size: 4, server_lifetime: 600_000, query_wait_timeout: 120_000 });
  t.match(poolSettingsFor(config, 'app', 'etl'), { pool_size: 2, server_lifetime: 600_000, query_wait_timeout: 300_000 });
  t.match(poolSettingsFor(config, 'other', 'web'), { pool_size: 10, server_lifetime: 3_600_000 });
});

const BAD: [string, Record<string, unknown>, Record<string, string>, RegExp][] = [
  ['mode', { pool: { mode: 'statement' } }, {}, /invalid value for 'pool\.mode' in f\.yaml: expected one of auto, none, session, transaction; got 'statement'/],
  ['pool size 0', { pool: { default_pool_size: 0 } }, {}, /'pool\.default_pool_size' in f\.yaml: expected a whole number of at least 1; got 0/],
  ['negative reserve', { pool: { reserve_pool_size: -1 } }, {}, /'pool\.reserve_pool_size'.*at least 0/],
  ['bad duration', { pool: { server_lifetime: 'forever' } }, {}, /'pool\.server_lifetime' in f\.yaml: expected a duration/],
  ['connect timeout 0', { pool: { server_connect_timeout: 0 } }, {}, /'pool\.server_connect_timeout'.*longer than 0/],
  ['env', {}, { TXPROXY_POOL_MAX_DB_CONNECTIONS: 'lots' }, /'pool\.max_db_connections' from TXPROXY_POOL_MAX_DB_CONNECTIONS: expected a whole number/],
  ['unknown key', { pool: { pool_mode: 'session' } }, {}, /unknown key 'pool\.pool_mode'.*allowed in 'pool': mode, max_prepared_statements, session_state, default_pool_size/],
  ['unknown override', { pool: { databases: { app: { default_pool_size: 3 } } } }, {}, /unknown key 'pool\.databases\.app\.default_pool_size'.*allowed in 'pool\.databases\.app': pool_mode, pool_size,/],
  ['wrong limit for a user', { pool: { users: { u: { max_db_connections: 1 } } } }, {}, /unknown key 'pool\.users\.u\.max_db_connections'.*max_user_connections/],
  ['override value', { pool: { users: { u: { pool_size: 'big' } } } }, {}, /'pool\.users\.u\.pool_size' in f\.yaml: expected a whole number/],
];

for (const [what, file, env, message] of BAD) {
  t.test(`refused: ${what}`, async (t) => {
    t.throws(() => buildConfig(file, settingsFromEnv(env), {}, 'f.yaml'), { name: 'ConfigError', message });
  });
}

t.test('ConfigError is what main turns into exit code 2', async (t) => {
  t.throws(() => buildConfig({ pool: { min_pool_size: 1.5 } }, {}, {}), ConfigError);
});

t.test('config/pooling.example.yaml is a valid configuration', async (t) => {
  const { readFileSync } = await import('node:fs');
  const { parseConfigFile } = await import('../../src/config/load.js');
  const file = parseConfigFile(readFileSync(new URL('../../config/pooling.example.yaml', import.meta.url), 'utf8'), 'pooling.example.yaml');
  const pool = buildConfig(file, {}, {}, 'pooling.example.yaml').pool;
  t.equal(pool.server_lifetime, 3_600_000);
  t.match(poolSettingsFor(pool, 'reports', 'etl'), { pool_size: 2, query_wait_timeout: 600_000 });
});
