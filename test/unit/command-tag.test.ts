import t from 'tap';
import { isWriteTag, rowsOfTag, verbOfTag } from '../../src/tracker/command-tag.js';

t.test('the row count of a tag is its last number, for the verbs that carry one', async (t) => {
  t.equal(rowsOfTag('SELECT 10'), 10);
  t.equal(rowsOfTag('INSERT 0 3'), 3);
  t.equal(rowsOfTag('UPDATE 0'), 0);
  t.equal(rowsOfTag('DELETE 12345678901'), 12345678901);
  t.equal(rowsOfTag('MERGE 2'), 2);
  t.equal(rowsOfTag('FETCH 5'), 5);
  t.equal(rowsOfTag('MOVE 1'), 1);
  t.equal(rowsOfTag('COPY 7'), 7);
});

t.test('tags without a row count have none', async (t) => {
  for (const tag of ['BEGIN', 'CREATE TABLE', 'SELECTS 1', 'SELEC 1', 'ALTER TABLE', 'SELECT x', 'SELECT ', 'SET', 'DROP INDEX', 'INSERT 0 1x']) {
    t.equal(rowsOfTag(tag), null, tag);
  }
});

t.test('the verb of a tag drops its counts only', async (t) => {
  t.equal(verbOfTag('INSERT 0 1'), 'INSERT');
  t.equal(verbOfTag('CREATE TABLE'), 'CREATE TABLE');
  t.equal(verbOfTag('BEGIN'), 'BEGIN');
});

t.test('write tags are those of INSERT, UPDATE, DELETE, MERGE and TRUNCATE', async (t) => {
  for (const tag of ['INSERT 0 1', 'UPDATE 3', 'DELETE 0', 'MERGE 2', 'TRUNCATE TABLE']) t.ok(isWriteTag(tag), tag);
  for (const tag of ['SELECT 1', 'INSERTED 1', 'UPDATE', 'DECLARE CURSOR', 'MOVE 1', 'TRUNCATE', 'COPY 5', '', 'BEGIN']) t.notOk(isWriteTag(tag), tag);
});
