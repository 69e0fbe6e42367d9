/**
 * SQL-standard routine bodies (`BEGIN ATOMIC … END`) hold semicolons that
 * do not end the statement. psql sends such a definition as one Query and
 * the server runs it as one statement: splitting it at its semicolons made
 * the tracker report statements that never ran and give later statements
 * the wrong text.
 */
import t from 'tap';
import { splitStatements } from '../../src/sql/classify.js';

const texts = (sql: string) => splitStatements(sql).map((s) => s.text);

t.test('CREATE FUNCTION … BEGIN ATOMIC … END is one statement', async (t) => {
  t.same(texts('CREATE FUNCTION two() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SELECT two()'), [
    'CREATE FUNCTION two() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END',
    'SELECT two()',
  ]);
});

t.test('CREATE OR REPLACE PROCEDURE, lower case, with CASE … END inside the body', async (t) => {
  const sql = 'create or replace procedure p() language sql begin atomic select case when true then 1 end; select 2; end; call p();';
  t.same(texts(sql), ['create or replace procedure p() language sql begin atomic select case when true then 1 end; select 2; end', 'call p()']);
  t.equal(splitStatements(sql)[0].operation, 'CREATE PROCEDURE');
});

t.test('BEGIN and END outside a routine definition still end at their semicolons', async (t) => {
  t.same(texts('BEGIN; SELECT CASE WHEN true THEN 1 END; END;'), ['BEGIN', 'SELECT CASE WHEN true THEN 1 END', 'END']);
  t.same(splitStatements('BEGIN; SELECT 1; END').map((s) => s.txControl), ['begin', null, 'commit']);
});

t.test('a routine with a dollar-quoted body, then a transaction: split as before', async (t) => {
  t.same(texts("CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$; BEGIN; SELECT f(); COMMIT"), [
    'CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$',
    'BEGIN',
    'SELECT f()',
    'COMMIT',
  ]);
  t.same(texts('CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN 1; BEGIN; END'), ['CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN 1', 'BEGIN', 'END']);
});
