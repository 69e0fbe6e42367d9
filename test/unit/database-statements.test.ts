import t from 'tap';
import { databasesToFree } from '../../src/pool/database-statements.js';
import { classifyStatement } from '../../src/sql/classify.js';

t.test('the databases a statement needs free of other sessions', async (t) => {
  const cases: [string, string[]][] = [
    ['DROP DATABASE test_app', ['test_app']],
    ['drop database if exists "Test App" with (force)', ['Test App']],
    ['CREATE DATABASE copy TEMPLATE template_src', ['template_src']],
    ["create database copy with owner = me template = 'src' encoding 'UTF8'", ['src']],
    ['CREATE DATABASE plain', []],
    ['ALTER DATABASE old RENAME TO new', ['old']],
    ['ALTER DATABASE db SET work_mem = 1', []],
    ['/* route */ DROP DATABASE x', ['x']],
    ['DROP TABLE t', []],
    ['SELECT 1', []],
  ];
  for (const [sql, expected] of cases) {
    t.same(databasesToFree(sql, classifyStatement(sql).operation), expected, sql);
  }
});
