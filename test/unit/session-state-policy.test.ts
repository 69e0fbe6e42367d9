/** `pool.session_state: refuse` refuses only what is certain to leave state on the server. */
import t from 'tap';
import { certainPins, sessionStateRefusal } from '../../src/pool/session-state-policy.js';
import { classifyStatement } from '../../src/sql/classify.js';

function pins(sql: string): string[] {
  return certainPins(sql, classifyStatement(sql).operation);
}

t.test('statements certain to pin', async (t) => {
  t.same(pins('LISTEN events'), ['listen']);
  t.same(pins('SELECT pg_advisory_lock(1)'), ['advisory_lock']);
  t.same(pins('select pg_try_advisory_lock_shared(1, 2)'), ['advisory_lock']);
  t.same(pins('CREATE TEMP TABLE t (id int)'), ['temp_table']);
  t.same(pins('create or replace temporary view v as select 1'), ['temp_table']);
  t.same(pins('CREATE LOCAL TEMPORARY TABLE t (id int)'), ['temp_table']);
  t.same(pins('SELECT 1 AS x INTO TEMP t'), ['temp_table']);
  t.same(pins('DECLARE c CURSOR WITH HOLD FOR SELECT 1'), ['hold_cursor']);
  t.same(pins('PREPARE q AS SELECT 1'), ['sql_prepare']);
  t.same(pins('SET ROLE app'), ['role']);
  t.same(pins('SET SESSION AUTHORIZATION app'), ['role']);
  t.same(pins("LOAD 'auto_explain'"), ['load']);
});

t.test('statements that may leave nothing are not refused', async (t) => {
  t.same(pins('CREATE TABLE t (temp int)'), [], 'a column named temp makes no temporary table');
  t.same(pins('CREATE TABLE temp_items (id int)'), []);
  t.same(pins('CREATE TEMP TABLE t (id int) ON COMMIT DROP'), [], 'gone at commit');
  t.same(pins('SELECT pg_advisory_xact_lock(1)'), []);
  t.same(pins('DO $$ BEGIN PERFORM 1; END $$'), [], 'unknown: pinned until the server is asked, not refused');
  t.same(pins('SET LOCAL ROLE app'), []);
  t.same(pins('SELECT 1'), []);
  t.same(pins('DECLARE c CURSOR FOR SELECT 1'), []);
});

t.test('the refusal names the statement and the alternative', async (t) => {
  const report = sessionStateRefusal('LISTEN', 'listen');
  t.match(report, { severity: 'ERROR', code: '0A000', message: /^LISTEN is not allowed in transaction pooling/, hint: /pool_mode: session/ });
});
