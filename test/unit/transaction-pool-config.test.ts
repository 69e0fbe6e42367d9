/**
 * The configuration of transaction pooling: `pool.mode: transaction`,
 * `pool_mode` per database and per user and which one a pool gets, and the
 * transaction-mode keys `max_prepared_statements` and `session_state` with
 * their defaults and refusals.
 */
import t from 'tap';
import { buildConfig } from '../../src/config/load.js';
import { poolMode, poolSettingsFor } from '../../src/pool/pool-config.js';

t.test('pool.mode: transaction parses, and stays transaction whatever the upstream', async (t) => {
  const pool = buildConfig({ pool: { mode: 'transaction' } }, {}, {}).pool;
  t.equal(pool.mode, 'transaction');
  t.equal(poolMode(pool.mode, false), 'transaction');
  t.equal(poolMode(pool.mode, true), 'transaction');
  t.equal(poolSettingsFor(pool, 'app', 'web', 'transaction').mode, 'transaction', 'a pool with no override takes the mode in force');
});

t.test('pool_mode per database and per user: the user’s wins over the database’s, which wins over the mode in force', async (t) => {
  const pool = buildConfig(
    {
      pool: {
        mode: 'session',
        databases: { app: { pool_mode: 'transaction' }, legacy: { pool_mode: 'session', pool_size: 3 } },
        users: { etl: { pool_mode: 'session' }, web: { pool_mode: 'transaction' } },
      },
    },
    {},
    {},
  ).pool;
  t.same(pool.databases.app, { pool_mode: 'transaction' });
  t.same(pool.users.etl, { pool_mode: 'session' });
  const modeOf = (database: string, user: string, inForce: 'session' | 'transaction' = 'session') => poolSettingsFor(pool, database, user, inForce).mode;
  t.equal(modeOf('app', 'someone'), 'transaction', 'the database override');
  t.equal(modeOf('app', 'etl'), 'session', 'the user override wins over the database’s');
  t.equal(modeOf('legacy', 'web'), 'transaction', 'the user override wins the other way too');
  t.equal(modeOf('legacy', 'someone', 'transaction'), 'session');
  t.equal(modeOf('other', 'someone'), 'session', 'no override: the mode in force');
  t.equal(modeOf('other', 'someone', 'transaction'), 'transaction');
  t.equal(poolSettingsFor(pool, 'legacy', 'web').pool_size, 3, 'the other keys of an override still apply');
});

t.test('max_prepared_statements and session_state: defaults 200 and pin', async (t) => {
  const pool = buildConfig({ pool: { mode: 'transaction' } }, {}, {}).pool;
  t.equal(pool.max_prepared_statements, 200);
  t.equal(pool.session_state, 'pin');
  t.equal(buildConfig({}, {}, {}).pool.max_prepared_statements, 200, 'whatever the mode');
  t.equal(buildConfig({}, {}, {}).pool.session_state, 'pin');
});

t.test('max_prepared_statements and session_state: values taken as given', async (t) => {
  for (const session_state of ['pin', 'warn', 'refuse'] as const) {
    const pool = buildConfig({ pool: { mode: 'transaction', max_prepared_statements: 1, session_state } }, {}, {}).pool;
    t.equal(pool.session_state, session_state);
    t.equal(pool.max_prepared_statements, 1);
  }
  t.equal(buildConfig({ pool: { max_prepared_statements: 5000 } }, {}, {}).pool.max_prepared_statements, 5000);
});

const BAD: [what: string, pool: Record<string, unknown>, message: RegExp][] = [
  ['pool_mode of a database', { databases: { app: { pool_mode: 'statement' } } }, /'pool\.databases\.app\.pool_mode' in f\.yaml: expected one of session, transaction/],
  ['pool_mode of a user', { users: { u: { pool_mode: 'auto' } } }, /'pool\.users\.u\.pool_mode' in f\.yaml: expected one of session, transaction/],
  ['max_prepared_statements 0', { max_prepared_statements: 0 }, /'pool\.max_prepared_statements' in f\.yaml: expected a whole number of at least 1; got 0/],
  ['max_prepared_statements not whole', { max_prepared_statements: 2.5 }, /'pool\.max_prepared_statements' in f\.yaml: expected a whole number/],
  ['session_state', { session_state: 'ignore' }, /'pool\.session_state' in f\.yaml: expected one of pin, warn, refuse/],
  ['max_prepared_statements per database', { databases: { app: { max_prepared_statements: 10 } } }, /unknown key 'pool\.databases\.app\.max_prepared_statements'/],
];

for (const [what, pool, message] of BAD) {
  t.test(`refused: ${what}`, async (t) => {
    t.throws(() => buildConfig({ pool }, {}, {}, 'f.yaml'), { name: 'ConfigError', message });
  });
}
