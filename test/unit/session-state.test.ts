/**
 * What statements may do to a server session (table-driven), the pins a
 * session holds as statements run and probes answer, the probe's parsing,
 * and the SQL that carries session settings to another server.
 */
import t from 'tap';
import { sessionEffects, type PinReason } from '../../src/pool/session-effects.js';
import { SessionPins } from '../../src/pool/session-state.js';
import { parseSessionProbe, sessionProbeSql } from '../../src/pool/session-probe.js';
import { clientSettings, settingsCarrySql } from '../../src/pool/settings-carry.js';
import { classifyStatement } from '../../src/sql/classify.js';

function effectsOf(sql: string): { settings: boolean; pins: PinReason[]; releases: PinReason[] } {
  const info = classifyStatement(sql);
  const e = sessionEffects(info.text, info.operation);
  return { settings: e.settings, pins: [...e.pins].sort(), releases: [...e.releases].sort() };
}

type Row = [sql: string, settings: boolean, pins: PinReason[], releases: PinReason[]];

t.test('statements that leave the session as it was', async (t) => {
  const harmless = [
    'SELECT 1',
    "SELECT * FROM t WHERE name = 'set_config(''a'', ''b'', false)'",
    'select now(), count(*) from pg_class',
    'VALUES (1), (2)',
    'TABLE t',
    'WITH x AS (SELECT 1) SELECT * FROM x',
    'INSERT INTO t VALUES (1) RETURNING id',
    'UPDATE t SET a = 1',
    'DELETE FROM t',
    'MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE',
    'COPY t FROM STDIN',
    'COPY (SELECT 1) TO STDOUT',
    'BEGIN',
    'START TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'COMMIT',
    'ROLLBACK',
    'SAVEPOINT a',
    'RELEASE SAVEPOINT a',
    'ROLLBACK TO SAVEPOINT a',
    "PREPARE TRANSACTION 'gid'",
    'SHOW work_mem',
    'EXPLAIN SELECT 1',
    'FETCH 10 FROM c',
    'MOVE NEXT IN c',
    "NOTIFY chan, 'payload'",
    'LOCK TABLE t',
    'SET LOCAL work_mem = 1',
    'SET LOCAL ROLE other',
    'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE',
    'SET CONSTRAINTS ALL DEFERRED',
    "SELECT set_config('work_mem', '1MB', true)",
    "SELECT set_config('work_mem', '1MB', 'on')",
    'SELECT pg_advisory_xact_lock(1)',
    'SELECT pg_try_advisory_xact_lock_shared(1)',
    'ALTER TABLE t ADD COLUMN b int',
    'DECLARE c CURSOR FOR SELECT 1',
    'DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1',
    'DISCARD PLANS',
    'VACUUM t',
    'ANALYZE t',
    'GRANT SELECT ON t TO u',
    '-- only a comment',
    '',
  ];
  for (const sql of harmless) t.same(effectsOf(sql), { settings: false, pins: [], releases: [] }, sql);
});

t.test('statements that change session settings or leave state', async (t) => {
  const rows: Row[] = [
    ["SET work_mem = '4MB'", true, [], []],
    ['set search_path to a, b', true, [], []],
    ['SET SESSION statement_timeout = 5', true, [], []],
    ["SET TIME ZONE 'UTC'", true, [], []],
    ['SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY', true, [], []],
    ['RESET work_mem', true, [], []],
    ['RESET ALL', true, [], ['role']],
    ["SELECT set_config('work_mem', '1MB', false)", true, [], []],
    ["SELECT pg_catalog.set_config('work_mem', '1MB', $1)", true, [], []],
    ["SELECT set_config('search_path', current_setting('search_path') || ',x', false)", true, [], []],
    ['SELECT set_config($1, $2, false)', true, ['role'], []],
    ["SELECT set_config('role', 'other', false)", true, ['role'], []],
    ['SET ROLE other', true, ['role'], []],
    ['SET SESSION ROLE other', true, ['role'], []],
    ['SET role = other', true, ['role'], []],
    ['SET SESSION AUTHORIZATION other', true, ['role'], []],
    ['RESET ROLE', true, [], ['role']],
    ['RESET SESSION AUTHORIZATION', true, [], ['role']],
    ['DISCARD ALL', true, [], ['advisory_lock', 'hold_cursor', 'listen', 'role', 'sql_prepare', 'temp_table']],
    ['DISCARD TEMP', false, [], ['temp_table']],
    ['LISTEN chan', false, ['listen'], []],
    ['UNLISTEN chan', false, [], ['listen']],
    ['UNLISTEN *', false, [], ['listen']],
    ['SELECT pg_advisory_lock(1)', false, ['advisory_lock'], []],
    ['SELECT pg_advisory_lock_shared(1, 2)', false, ['advisory_lock'], []],
    ['SELECT pg_try_advisory_lock(hashtext($1))', false, ['advisory_lock'], []],
    ['select PG_TRY_ADVISORY_LOCK_SHARED(1)', false, ['advisory_lock'], []],
    ['SELECT pg_advisory_unlock(1)', false, [], ['advisory_lock']],
    ['SELECT pg_advisory_unlock_shared(1)', false, [], ['advisory_lock']],
    ['SELECT pg_advisory_unlock_all()', false, [], ['advisory_lock']],
    ['WITH l AS (SELECT pg_advisory_lock(7)) SELECT * FROM l', false, ['advisory_lock'], []],
    ['CREATE TEMP TABLE t (a int)', false, ['temp_table'], []],
    ['CREATE TEMPORARY VIEW v AS SELECT 1', false, ['temp_table'], []],
    ['CREATE LOCAL TEMPORARY TABLE t (a int)', false, ['temp_table'], []],
    ['CREATE UNLOGGED TABLE pg_temp.t (a int)', false, ['temp_table'], []],
    ['CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$SELECT 1$$', false, ['temp_table'], []],
    ['SELECT 1 AS a INTO TEMP t', false, ['temp_table'], []],
    ['SELECT 1 AS a INTO TEMPORARY TABLE t', false, ['temp_table'], []],
    ['CREATE TABLE t (a int)', false, ['temp_table'], []],
    ['create index on t (a)', false, ['temp_table'], []],
    ['SELECT * INTO t FROM s', false, ['temp_table'], []],
    ['DROP TABLE t', false, [], ['temp_table']],
    ['DECLARE c CURSOR WITH HOLD FOR SELECT 1', false, ['hold_cursor'], []],
    ['DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT pg_advisory_lock(1)', false, ['advisory_lock', 'hold_cursor'], []],
    ['CLOSE c', false, [], ['hold_cursor']],
    ['CLOSE ALL', false, [], ['hold_cursor']],
    ['PREPARE p AS SELECT 1', false, ['sql_prepare'], []],
    ['PREPARE p (int) AS SELECT $1', false, ['sql_prepare'], []],
    ['DEALLOCATE p', false, [], ['sql_prepare']],
    ['DEALLOCATE ALL', false, [], ['sql_prepare']],
    ['EXECUTE p(1)', true, [], []],
    ["LOAD 'auto_explain'", false, ['load'], []],
    ['DO $$BEGIN PERFORM 1; END$$', true, ['unknown'], []],
    ['CALL proc()', true, ['unknown'], []],
    ["SELECT dblink_connect('c', 'dbname=x')", false, ['unknown'], []],
  ];
  for (const [sql, settings, pins, releases] of rows) t.same(effectsOf(sql), { settings, pins, releases }, sql);
});

const probeAnswer = (row: (string | null)[]) => ({ tags: ['SELECT 1'], error: null, status: 'I' as const, rows: [row], notifications: [] });

t.test('pins: taken as statements run, dropped only on the server\'s word', async (t) => {
  const pins = new SessionPins();
  t.same(pins.decide('I'), { kind: 'release' }, 'a fresh session holds nothing');
  pins.statementRan(effectsOf('LISTEN a'));
  t.same(pins.decide('T'), { kind: 'keep', reasons: ['listen'] }, 'never inside a transaction');
  t.same(pins.decide('I'), { kind: 'probe' }, 'the server says whether LISTEN took');
  pins.probed(parseSessionProbe(probeAnswer(['1', '0', '0', '0', '0', 'f', null])));
  t.same(pins.decide('I'), { kind: 'keep', reasons: ['listen'] });
  pins.statementRan(effectsOf("SET work_mem = '1MB'"));
  // A RESET ALL would have returned the server to its own startup values, which the client must not see.
  t.same(pins.decide('I'), { kind: 'probe' }, 'settings changed while pinned: the server is asked what they are');
  t.ok(pins.settingsStale);
  pins.statementRan(effectsOf('UNLISTEN *'));
  t.same(pins.decide('I'), { kind: 'probe' });
  // The UNLISTEN's transaction rolled back: the server still listens.
  pins.probed(parseSessionProbe(probeAnswer(['1', '0', '0', '0', '0', 'f', '{"work_mem" : "1MB"}'])));
  t.same(pins.reasons(), ['listen'], 'a release the server does not confirm releases nothing');
  t.notOk(pins.settingsStale);
  pins.statementRan(effectsOf('UNLISTEN *'));
  pins.probed(parseSessionProbe(probeAnswer(['0', '0', '0', '0', '0', 'f', '{"work_mem" : "1MB"}'])));
  t.same(pins.decide('I'), { kind: 'release' });
  t.notOk(pins.pinned);
});

t.test('pins: unknown statements are read from the server, LOAD holds to the end', async (t) => {
  const pins = new SessionPins();
  pins.statementRan(effectsOf('CALL proc()'));
  t.same(pins.decide('I'), { kind: 'probe' });
  pins.probed(parseSessionProbe(probeAnswer(['0', '2', '0', '0', '0', 'f', null])));
  t.same(pins.reasons(), ['advisory_lock'], 'what the procedure left behind');
  pins.statementRan(effectsOf("LOAD 'plugin'"));
  pins.statementRan(effectsOf('SELECT pg_advisory_unlock_all()'));
  t.same(pins.decide('I'), { kind: 'keep', reasons: ['advisory_lock', 'load'] }, 'no server answer releases a loaded library');
  pins.probed(parseSessionProbe(probeAnswer(['0', '0', '0', '0', '0', 'f', null])));
  t.same(pins.reasons(), ['load']);
});

t.test('pins: a DO block run while pinned asks the server, whose lock it may have released', async (t) => {
  const pins = new SessionPins();
  pins.statementRan(effectsOf('SELECT pg_advisory_lock(1)'));
  pins.probed(parseSessionProbe(probeAnswer(['0', '1', '0', '0', '0', 'f', null])));
  pins.statementRan(effectsOf('DO $$BEGIN PERFORM pg_advisory_unlock_all(); END$$'));
  t.same(pins.decide('I'), { kind: 'probe' }, 'the lock was not touched by any statement txproxy can read');
  pins.probed(parseSessionProbe(probeAnswer(['0', '0', '0', '0', '0', 'f', null])));
  t.same(pins.decide('I'), { kind: 'release' });
});

t.test('probe answers: every column read, bad answers refused', async (t) => {
  const state = parseSessionProbe(probeAnswer(['1', '2', '3', '4', '5', 't', '{"work_mem" : "1MB", "TimeZone" : "UTC"}']));
  t.same([...state.pins].sort(), ['advisory_lock', 'hold_cursor', 'listen', 'role', 'sql_prepare', 'temp_table']);
  t.same(Object.fromEntries(state.settings), { work_mem: '1MB', TimeZone: 'UTC' });
  t.throws(() => parseSessionProbe({ tags: [], error: { message: 'boom' } as never, status: 'I', rows: [], notifications: [] }), /session probe failed: boom/);
  t.throws(() => parseSessionProbe({ ...probeAnswer(['0', '0', '0', '0', '0', 'f', null]), status: 'T' }), /unexpected answer/);
  t.match(sessionProbeSql("o'brien"), /session_user <> E'o''brien'/, 'the login user quoted');
});

t.test('settings carried: set what differs, reset what the client never set', async (t) => {
  const m = (o: Record<string, string>) => new Map(Object.entries(o));
  t.equal(settingsCarrySql(m({ a: '1' }), m({ a: '1' })), null);
  t.equal(settingsCarrySql(m({}), m({})), null);
  t.equal(
    settingsCarrySql(m({ work_mem: '4MB', search_path: "a, \"b'c\"", same: 'x' }), m({ work_mem: '1MB', same: 'x', TimeZone: 'UTC', 'my.opt': '1' })),
    'RESET "TimeZone"; RESET "my"."opt"; SELECT pg_catalog.set_config(E\'work_mem\', E\'4MB\', false), pg_catalog.set_config(E\'search_path\', E\'a, "b\'\'c"\', false)',
  );
  t.equal(settingsCarrySql(m({ x: 'back\\slash' }), m({})), "SELECT pg_catalog.set_config(E'x', E'back\\\\slash', false)");
});

t.test('client settings: startup parameters overlaid with what the server says', async (t) => {
  t.same(
    Object.fromEntries(clientSettings([['application_name', 'app'], ['work_mem', '1MB']], new Map([['work_mem', '2MB'], ['TimeZone', 'UTC']]))),
    { application_name: 'app', work_mem: '2MB', TimeZone: 'UTC' },
  );
});
