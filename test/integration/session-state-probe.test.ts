/**
 * The session probe against a real server: each kind of state it reads,
 * taken and released the ways a client can, what DISCARD ALL clears, how
 * pg_settings names the source of SET, set_config and startup parameters,
 * and session settings carried onto another link and read back.
 */
import t from 'tap';
import { ServerLink } from '../../src/server-link/server-link.js';
import { parseUpstreamUrl } from '../../src/upstream/target.js';
import { probeSession, type ProbedState } from '../../src/pool/session-probe.js';
import { clientSettings, settingsCarrySql } from '../../src/pool/settings-carry.js';
import { SessionPins } from '../../src/pool/session-state.js';
import { sessionEffects } from '../../src/pool/session-effects.js';
import { classifyStatement } from '../../src/sql/classify.js';
import { startPostgres } from '../helpers/postgres.js';

const server = await startPostgres();
t.teardown(() => server.stop());
const target = parseUpstreamUrl(`${server.url}?sslmode=disable`);
const credentials = { kind: 'password', password: 'postgres' } as const;
await server.sql("CREATE ROLE probe_other LOGIN PASSWORD 'x'");

async function openLink(parameters: Record<string, string> = {}): Promise<ServerLink> {
  const link = await ServerLink.open(target, { user: 'postgres', database: 'postgres', parameters }, credentials, 5000);
  t.teardown(() => link.close());
  return link;
}

async function ok(link: ServerLink, sql: string): Promise<void> {
  const result = await link.run(sql);
  if (result.error !== null) throw new Error(`${sql}: ${result.error.message}`);
}

const pinsOf = (state: ProbedState): string[] => [...state.pins].sort();

t.test('a fresh link holds nothing and changed no setting', async (t) => {
  const link = await openLink();
  const state = await probeSession(link, 'postgres');
  t.same(pinsOf(state), []);
  t.same([...state.settings], []);
});

t.test('each kind of state is seen while held and gone once released', async (t) => {
  const link = await openLink();
  const cases: [reason: string, take: string, release: string][] = [
    ['listen', 'LISTEN probe_a; LISTEN probe_b', 'UNLISTEN *'],
    ['listen', 'LISTEN probe_a', 'UNLISTEN probe_a'],
    ['advisory_lock', 'SELECT pg_advisory_lock(1), pg_advisory_lock(1)', 'SELECT pg_advisory_unlock(1), pg_advisory_unlock(1)'],
    ['advisory_lock', 'SELECT pg_try_advisory_lock_shared(2)', 'SELECT pg_advisory_unlock_all()'],
    ['temp_table', 'CREATE TEMP TABLE probe_t (a int)', 'DROP TABLE probe_t'],
    ['temp_table', 'CREATE TABLE pg_temp.probe_t2 (a int)', 'DISCARD TEMP'],
    ['temp_table', 'CREATE FUNCTION pg_temp.probe_f() RETURNS int LANGUAGE sql AS $$SELECT 1$$', 'DROP FUNCTION pg_temp.probe_f()'],
    ['temp_table', 'SELECT 1 AS a INTO TEMP probe_t3', 'DROP TABLE probe_t3'],
    ['temp_table', 'SET search_path = pg_temp, public; CREATE TABLE probe_t4 (a int); RESET search_path', 'DISCARD TEMP'],
    ['temp_table', 'CREATE TYPE pg_temp.probe_ty AS ENUM (\'a\')', 'DROP TYPE pg_temp.probe_ty'],
    ['hold_cursor', 'DECLARE probe_c CURSOR WITH HOLD FOR SELECT 1', 'CLOSE probe_c'],
    ['sql_prepare', 'PREPARE probe_p AS SELECT 1', 'DEALLOCATE probe_p'],
    ['role', 'SET ROLE probe_other', 'RESET ROLE'],
    ['role', "SELECT set_config('role', 'probe_other', false)", 'SET ROLE NONE'],
    ['role', 'SET SESSION AUTHORIZATION probe_other', 'RESET SESSION AUTHORIZATION'],
  ];
  for (const [reason, take, release] of cases) {
    await ok(link, take);
    t.same(pinsOf(await probeSession(link, 'postgres')), [reason], `held after ${take}`);
    await ok(link, release);
    t.same(pinsOf(await probeSession(link, 'postgres')), [], `released by ${release}`);
  }
});

t.test('transaction-level state is not session state', async (t) => {
  const link = await openLink();
  await ok(link, "BEGIN; SELECT pg_advisory_xact_lock(3); SET LOCAL work_mem = '7MB'; SELECT set_config('statement_timeout', '5s', true); SET LOCAL ROLE probe_other; DECLARE probe_nohold CURSOR FOR SELECT 1; CREATE TEMP TABLE probe_x (a int) ON COMMIT DROP; COMMIT");
  const state = await probeSession(link, 'postgres');
  t.same(pinsOf(state), []);
  t.same([...state.settings], []);
});

t.test('released inside a transaction that rolls back: still held', async (t) => {
  const link = await openLink();
  const pins = new SessionPins();
  const run = async (sql: string): Promise<void> => {
    for (const statement of sql.split('; ')) pins.statementRan(sessionEffects(statement, classifyStatement(statement).operation));
    const result = await link.run(sql);
    while (true) {
      const decision = pins.decide(result.status);
      if (decision.kind !== 'probe') break;
      pins.probed(await probeSession(link, 'postgres'));
    }
  };
  await run('LISTEN probe_rb');
  t.same(pins.reasons(), ['listen']);
  await run('BEGIN; UNLISTEN *; ROLLBACK');
  t.same(pins.reasons(), ['listen'], 'the rolled-back UNLISTEN released nothing');
  t.same(pins.decide('I'), { kind: 'keep', reasons: ['listen'] }, 'no probe until a statement touches it again');
  await run('UNLISTEN *');
  t.same(pins.reasons(), []);
  t.same(pins.decide('I'), { kind: 'release' });
  await run('DO $$BEGIN PERFORM pg_advisory_lock(9); END$$');
  t.same(pins.reasons(), ['advisory_lock'], 'what a DO block left is read from the server');
  await run('SELECT pg_advisory_unlock(9)');
  t.same(pins.decide('I'), { kind: 'release' });
  await run('BEGIN; LISTEN probe_never; CREATE TEMP TABLE probe_never (a int); ROLLBACK');
  t.same(pins.reasons(), [], 'state taken in a transaction that rolled back is not held');
  await run("SET work_mem = '3MB'");
  t.same(pins.decide('I'), { kind: 'release' }, 'settings read, nothing pins');
});

t.test('DISCARD ALL clears every kind of state and every session setting', async (t) => {
  const link = await openLink();
  await ok(link, "LISTEN d; SELECT pg_advisory_lock(4); CREATE TEMP TABLE d_t (a int); DECLARE d_c CURSOR WITH HOLD FOR SELECT 1; PREPARE d_p AS SELECT 1; SET work_mem = '5MB'; SET ROLE probe_other");
  const before = await probeSession(link, 'postgres');
  t.same(pinsOf(before), ['advisory_lock', 'hold_cursor', 'listen', 'role', 'sql_prepare', 'temp_table']);
  t.equal(before.settings.get('work_mem'), '5MB');
  await ok(link, 'DISCARD ALL');
  const after = await probeSession(link, 'postgres');
  t.same(pinsOf(after), []);
  t.same([...after.settings], []);
});

t.test('setting sources: SET, SET SESSION and set_config(…, false) are session; startup parameters and local ones are not', async (t) => {
  const link = await openLink({ application_name: 'probe_start', options: '-c geqo_threshold=9' });
  t.same([...(await probeSession(link, 'postgres')).settings], [], 'startup parameters have source client');
  await ok(link, "SET work_mem = '6MB'; SET SESSION search_path = a, \"B c\"; SELECT set_config('statement_timeout', '10s', false); SELECT set_config('lock_timeout', '1s', true); SET TIME ZONE 'UTC'; SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL REPEATABLE READ; SET application_name = 'changed'");
  const state = await probeSession(link, 'postgres');
  t.same(Object.fromEntries(state.settings), {
    work_mem: '6MB',
    search_path: 'a, "B c"',
    statement_timeout: '10s',
    TimeZone: 'UTC',
    default_transaction_isolation: 'repeatable read',
    application_name: 'changed',
  });
  await ok(link, 'RESET application_name');
  const reset = await probeSession(link, 'postgres');
  t.notOk(reset.settings.has('application_name'), 'RESET returns a startup parameter to its source client');
  t.equal((await link.run('SHOW application_name')).rows[0][0], 'probe_start', 'and to its startup value');
});

t.test('settings carried to another link: only what differs, read back the same', async (t) => {
  const from = await openLink();
  const to = await openLink();
  await ok(from, "SET work_mem = '6MB'; SET search_path = a, \"b'c\"; SET application_name = 'it''s \\ me'; SET \"probe.custom\" = 'x'");
  await ok(to, "SET work_mem = '6MB'; SET statement_timeout = '3s'; SET \"probe.other\" = 'y'");
  const wanted = (await probeSession(from, 'postgres')).settings;
  const current = (await probeSession(to, 'postgres')).settings;
  const sql = settingsCarrySql(wanted, current);
  t.not(sql, null);
  t.notMatch(sql!, /work_mem/, 'what is equal is left alone');
  await ok(to, sql!);
  const carried = (await probeSession(to, 'postgres')).settings;
  // Custom settings stay defined (with an empty value) after RESET: that is how the server keeps placeholders.
  t.same(Object.fromEntries(carried), Object.fromEntries(wanted));
  t.equal(settingsCarrySql(wanted, carried), null, 'nothing left to do');
});

t.test('RESET of a startup parameter: the client gets its own startup value back, not the link\'s', async (t) => {
  // A pooled link starts with the pool's parameters and gets the client's with set_config, as pooled-connect does.
  const link = await openLink({ application_name: 'pool_link' });
  const startup: [string, string][] = [['application_name', 'client_app'], ['work_mem', '2MB']];
  await ok(link, settingsCarrySql(clientSettings(startup, new Map()), new Map())!);
  t.same(Object.fromEntries((await probeSession(link, 'postgres')).settings), { application_name: 'client_app', work_mem: '2MB' });
  await ok(link, "RESET application_name; SET work_mem = '8MB'");
  t.equal((await link.run('SHOW application_name')).rows[0][0], 'pool_link', 'the server alone goes back to the link\'s value');
  const probed = (await probeSession(link, 'postgres')).settings;
  const wanted = clientSettings(startup, probed);
  t.same(Object.fromEntries(wanted), { application_name: 'client_app', work_mem: '8MB' });
  await ok(link, settingsCarrySql(wanted, probed)!);
  t.equal((await link.run('SHOW application_name')).rows[0][0], 'client_app', 'as PostgreSQL would have done for the client');
  t.same(Object.fromEntries((await probeSession(link, 'postgres')).settings), Object.fromEntries(wanted));
});
