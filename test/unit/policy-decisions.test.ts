import t from 'tap';
import { NOOP_SQL, refusalStatement } from '../../src/policy/control-sql.js';
import { DryRunChanges } from '../../src/policy/dry-run-changes.js';
import { PolicyErrors } from '../../src/policy/policy-errors.js';
import type { PolicyAction, PolicyMode } from '../../src/policy/policy-config.js';
import { NO_LIMITS, PolicyRule, type Limits } from '../../src/policy/policy-set.js';
import { decideCleanEnd, outcomeMarkOf } from '../../src/policy/request-outcome.js';
import { finishSql, planClientControl, transactionModesOf } from '../../src/policy/single-transaction.js';
import { decideStatement, type StatementSituation } from '../../src/policy/statement-decision.js';
import { TransactionForecast } from '../../src/policy/transaction-forecast.js';
import { classifyStatement } from '../../src/sql/classify.js';

const rule = (mode: PolicyMode, action: PolicyAction = 'enforce', limits: Partial<Limits> = {}) =>
  new PolicyRule('r', mode, action, { ...NO_LIMITS, ...limits }, []);

const outside: StatementSituation = { status: 'I', statementsBefore: 0, savepointDepth: 0 };
const inside: StatementSituation = { status: 'T', statementsBefore: 1, savepointDepth: 0 };
const failed: StatementSituation = { status: 'E', statementsBefore: 2, savepointDepth: 0 };
const wrapped = (over: Partial<StatementSituation> = {}, wrapper = { failed: false, modes: null as string | null }): StatementSituation => ({
  status: 'I',
  statementsBefore: 1,
  savepointDepth: 0,
  wrapper,
  ...over,
});

/** [what, rule, sql, situation, expected: 'allow' | 'refuse <decision> <code>' | 'warn <decision> <code>'] */
const cases: [string, PolicyRule, string, StatementSituation, string][] = [
  ['atomic: autocommit INSERT', rule('atomic'), "INSERT INTO t VALUES (1)", outside, 'refuse refused 25P01'],
  ['atomic: INSERT in a block', rule('atomic'), 'INSERT INTO t VALUES (1)', inside, 'allow'],
  ['atomic: autocommit UPDATE, warn only', rule('atomic', 'warn'), 'UPDATE t SET a = 1', outside, 'warn refused 25P01'],
  ['atomic: DDL is a write', rule('atomic'), 'CREATE TABLE x (a int)', outside, 'refuse refused 25P01'],
  ['atomic: data-modifying CTE', rule('atomic'), 'WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d', outside, 'refuse refused 25P01'],
  ['atomic: SELECT … FOR UPDATE outside', rule('atomic'), 'SELECT * FROM t FOR UPDATE', outside, 'refuse refused 25P01'],
  ['atomic: SELECT … FOR SHARE inside', rule('atomic'), 'SELECT * FROM t FOR SHARE', inside, 'allow'],
  ['atomic: plain read outside', rule('atomic'), 'SELECT * FROM t', outside, 'allow'],
  ['atomic: BEGIN', rule('atomic'), 'BEGIN', outside, 'allow'],
  ['atomic: VACUUM cannot run in a block at all', rule('atomic'), 'VACUUM t', outside, 'allow'],
  ['atomic: CREATE INDEX CONCURRENTLY likewise', rule('atomic'), 'CREATE INDEX CONCURRENTLY i ON t (a)', outside, 'allow'],
  ['atomic: in a failed block the server refuses anyway', rule('atomic'), 'INSERT INTO t VALUES (1)', failed, 'allow'],
  ['read-only: INSERT outside', rule('read-only'), 'INSERT INTO t VALUES (1)', outside, 'refuse refused 25006'],
  ['read-only: DELETE inside', rule('read-only'), 'DELETE FROM t', inside, 'refuse refused 25006'],
  ['read-only: SELECT … FOR UPDATE', rule('read-only'), 'SELECT * FROM t FOR NO KEY UPDATE', inside, 'refuse refused 25006'],
  ['read-only: COPY FROM', rule('read-only'), 'COPY t FROM STDIN', outside, 'refuse refused 25006'],
  ['read-only: COPY TO', rule('read-only'), 'COPY t TO STDOUT', outside, 'allow'],
  ['read-only: SELECT', rule('read-only'), 'SELECT 1', outside, 'allow'],
  ['read-only: warn', rule('read-only', 'warn'), 'TRUNCATE t', outside, 'warn refused 25006'],
  ['autocommit: anything', rule('autocommit'), 'DELETE FROM t', outside, 'allow'],
  ['limit: statements, within', rule('autocommit', 'enforce', { maxStatementsPerTransaction: 3 }), 'SELECT 1', { ...inside, statementsBefore: 2 }, 'allow'],
  ['limit: statements, past', rule('autocommit', 'enforce', { maxStatementsPerTransaction: 3 }), 'SELECT 1', { ...inside, statementsBefore: 3 }, 'refuse limit 54000'],
  ['limit: statements, COMMIT always passes', rule('autocommit', 'enforce', { maxStatementsPerTransaction: 3 }), 'COMMIT', { ...inside, statementsBefore: 3 }, 'allow'],
  ['limit: statements, ROLLBACK TO always passes', rule('autocommit', 'enforce', { maxStatementsPerTransaction: 1 }), 'ROLLBACK TO a', { ...inside, statementsBefore: 3 }, 'allow'],
  ['limit: statements, warn', rule('atomic', 'warn', { maxStatementsPerTransaction: 1 }), 'SELECT 1', inside, 'warn limit 54000'],
  ['limit: savepoint depth, within', rule('autocommit', 'enforce', { maxSavepointDepth: 2 }), 'SAVEPOINT b', { ...inside, savepointDepth: 1 }, 'allow'],
  ['limit: savepoint depth, past', rule('autocommit', 'enforce', { maxSavepointDepth: 2 }), 'SAVEPOINT c', { ...inside, savepointDepth: 2 }, 'refuse limit 54000'],
  ['limit: no savepoints at all', rule('autocommit', 'enforce', { maxSavepointDepth: 0 }), 'SAVEPOINT a', inside, 'refuse limit 54000'],
  ['limit: RELEASE is never held back', rule('autocommit', 'enforce', { maxSavepointDepth: 0 }), 'RELEASE a', inside, 'allow'],
  ['atomic before limits', rule('atomic', 'enforce', { maxStatementsPerTransaction: 1 }), 'INSERT INTO t VALUES (1)', outside, 'refuse refused 25P01'],
  ['single-transaction: a write', rule('single-transaction'), 'INSERT INTO t VALUES (1)', wrapped(), 'allow'],
  ['single-transaction: after a failure', rule('single-transaction', 'warn'), 'SELECT 1', wrapped({}, { failed: true, modes: null }), 'refuse refused 25P02'],
  ['single-transaction: ROLLBACK after a failure', rule('single-transaction'), 'ROLLBACK', wrapped({}, { failed: true, modes: null }), 'allow'],
  ['single-transaction: BEGIN after a failure', rule('single-transaction'), 'BEGIN', wrapped({}, { failed: true, modes: null }), 'refuse refused 25P02'],
  ['single-transaction: PREPARE TRANSACTION', rule('single-transaction'), "PREPARE TRANSACTION 'x'", wrapped({ status: 'T' }), 'refuse refused 0A000'],
  ['single-transaction: VACUUM', rule('dry-run'), 'VACUUM', wrapped(), 'refuse refused 25001'],
  ['single-transaction: BEGIN with modes mid-request', rule('single-transaction'), 'BEGIN ISOLATION LEVEL SERIALIZABLE', wrapped(), 'refuse refused 25001'],
  [
    'single-transaction: BEGIN with the modes the request opened with',
    rule('single-transaction'),
    'BEGIN ISOLATION LEVEL SERIALIZABLE',
    wrapped({ statementsBefore: 0 }, { failed: false, modes: 'ISOLATION LEVEL SERIALIZABLE' }),
    'allow',
  ],
  ['single-transaction: plain BEGIN mid-request', rule('single-transaction'), 'BEGIN', wrapped(), 'allow'],
  ['single-transaction: request statement limit', rule('single-transaction', 'enforce', { maxStatementsPerTransaction: 5 }), 'SELECT 1', wrapped({ statementsBefore: 5 }), 'refuse limit 54000'],
];

t.test('statement decisions', async (t) => {
  for (const [what, r, sql, situation, expected] of cases) {
    const verdict = decideStatement(r, classifyStatement(sql), situation);
    const actual = verdict.kind === 'allow' ? 'allow' : `${verdict.kind} ${verdict.decision} ${verdict.report.code}`;
    t.equal(actual, expected, what);
  }
});

t.test('refusal messages name the rule and say what to do', async (t) => {
  const r = new PolicyRule('checkout', 'atomic', 'enforce', NO_LIMITS, []);
  const verdict = decideStatement(r, classifyStatement('INSERT INTO t VALUES (1)'), outside);
  t.match(verdict, {
    kind: 'refuse',
    report: {
      severity: 'ERROR',
      code: '25P01',
      message: "INSERT outside a transaction block refused by txproxy policy rule 'checkout' (atomic)",
      hint: /BEGIN and COMMIT/,
    },
  });
  t.match(PolicyErrors.readOnly(rule('read-only'), 'UPDATE'), { code: '25006', message: /^cannot execute UPDATE in a read-only transaction/ });
  // With action warn the statement runs: no message may say it was refused.
  const warnings = [
    decideStatement(rule('atomic', 'warn'), classifyStatement('UPDATE t SET a = 1'), outside),
    decideStatement(rule('atomic', 'warn'), classifyStatement('SELECT * FROM t FOR UPDATE'), outside),
    decideStatement(rule('read-only', 'warn'), classifyStatement('DELETE FROM t'), inside),
    decideStatement(rule('atomic', 'warn', { maxStatementsPerTransaction: 1 }), classifyStatement('SELECT 1'), inside),
    decideStatement(rule('atomic', 'warn', { maxSavepointDepth: 0 }), classifyStatement('SAVEPOINT a'), inside),
  ];
  for (const verdict of warnings) {
    t.equal(verdict.kind, 'warn');
    if (verdict.kind !== 'warn') continue;
    t.match(verdict.report.message, /let through with a warning \(action warn\)/);
    t.notMatch(verdict.report.message, /refused|cannot execute|would exceed/);
  }
  t.match(PolicyErrors.idleInTransaction(r, 5000), { severity: 'FATAL', code: '25P03', message: 'terminating connection due to idle-in-transaction timeout' });
  t.match(PolicyErrors.transactionTimeout(r, 5000), { severity: 'FATAL', code: '25P04', message: 'terminating connection due to transaction timeout' });
});

t.test('the forecast follows the client through pipelined statements', async (t) => {
  const f = new TransactionForecast();
  const send = (sql: string) => f.sent(classifyStatement(sql));
  const state = () => [f.status, f.statementsBefore(), f.savepointDepth];
  t.same(state(), ['I', 0, 0]);
  send('INSERT INTO t VALUES (1)');
  t.same(state(), ['I', 1, 0], 'an implicit transaction is open until the batch ends');
  send('BEGIN');
  t.same(state(), ['T', 2, 0], 'BEGIN adopts what ran before it in the batch');
  f.batchEnded();
  t.same(state(), ['T', 2, 0], 'the block outlives the batch');
  send('SAVEPOINT a');
  send('SAVEPOINT b');
  send('SAVEPOINT a');
  t.same(state(), ['T', 5, 3]);
  send('RELEASE a');
  t.same(state(), ['T', 6, 2], 'RELEASE drops the newest a and what came after');
  f.refused();
  t.same(state(), ['E', 6, 2], 'a refusal fails the block');
  send('ROLLBACK TO b');
  t.same(state(), ['T', 7, 2], 'ROLLBACK TO recovers');
  send('COMMIT');
  t.same(state(), ['I', 0, 0]);
  send('SELECT 1');
  f.refused();
  t.same(state(), ['I', 0, 0], 'a refusal ends an implicit transaction');
  send('COMMIT AND CHAIN');
  t.same(state(), ['I', 0, 0], 'AND CHAIN outside a block starts nothing');
  send('BEGIN');
  send('COMMIT AND CHAIN');
  t.same(state(), ['T', 0, 0], 'AND CHAIN inside one starts the next at once');
  f.resync('E', ['x']);
  t.same(state(), ['E', 0, 1], "the server's word wins");
  send('SAVEPOINT outside');
  f.resync('I', []);
  send('SAVEPOINT outside');
  t.same(state(), ['I', 0, 0], 'outside a block the server refuses SAVEPOINT');
});

t.test("single-transaction: the client's transaction control one level down", async (t) => {
  const plan = (sql: string, block: boolean, blockFailed = false) =>
    planClientControl(classifyStatement(sql), block, blockFailed)?.map((s) => `${s.sql} => ${s.answer.kind === 'retag' ? `${s.answer.notice ? 'notice+' : ''}${s.answer.tag}` : s.answer.kind}${s.clientBlock === undefined ? '' : ` [${s.clientBlock ? 'in' : 'out'}]`}`) ?? null;
  const cases: [string, boolean, boolean, string[] | null][] = [
    ['BEGIN', false, false, ['SAVEPOINT txproxy_client_block => BEGIN [in]']],
    ['START TRANSACTION', false, false, ['SAVEPOINT txproxy_client_block => START TRANSACTION [in]']],
    ['BEGIN', true, false, null],
    ['COMMIT', true, false, ['RELEASE SAVEPOINT txproxy_client_block => COMMIT [out]']],
    ['END', true, false, ['RELEASE SAVEPOINT txproxy_client_block => COMMIT [out]']],
    ['COMMIT', true, true, ['ROLLBACK TO SAVEPOINT txproxy_client_block => ROLLBACK [out]', 'RELEASE SAVEPOINT txproxy_client_block => drop']],
    ['ROLLBACK', true, false, ['ROLLBACK TO SAVEPOINT txproxy_client_block => ROLLBACK [out]', 'RELEASE SAVEPOINT txproxy_client_block => drop']],
    ['ABORT', true, true, ['ROLLBACK TO SAVEPOINT txproxy_client_block => ROLLBACK [out]', 'RELEASE SAVEPOINT txproxy_client_block => drop']],
    ['COMMIT', false, false, [`${NOOP_SQL} => notice+COMMIT`]],
    ['ROLLBACK', false, false, [`${NOOP_SQL} => notice+ROLLBACK`]],
    ['COMMIT AND CHAIN', true, false, ['RELEASE SAVEPOINT txproxy_client_block => COMMIT', 'SAVEPOINT txproxy_client_block => drop']],
    [
      'ROLLBACK AND CHAIN',
      true,
      false,
      ['ROLLBACK TO SAVEPOINT txproxy_client_block => ROLLBACK [in]', 'RELEASE SAVEPOINT txproxy_client_block => drop', 'SAVEPOINT txproxy_client_block => drop'],
    ],
    ['SAVEPOINT a', true, false, null],
    ['ROLLBACK TO SAVEPOINT a', true, true, null],
    ['RELEASE a', true, false, null],
    ['INSERT INTO t VALUES (1)', false, false, null],
  ];
  for (const [sql, block, blockFailed, expected] of cases) t.same(plan(sql, block, blockFailed), expected, `${sql} ${block ? 'in' : 'outside'} a${blockFailed ? ' failed' : ''} block`);

  t.same(finishSql({ dryRun: false, clientBlock: false, failed: false, commit: true }), ['COMMIT']);
  t.same(finishSql({ dryRun: false, clientBlock: true, failed: false, commit: true }), ['ROLLBACK TO SAVEPOINT txproxy_client_block', 'COMMIT'], 'a block left open is abandoned, the rest commits');
  t.same(finishSql({ dryRun: true, clientBlock: false, failed: false, commit: true }), ['ROLLBACK']);
  t.same(finishSql({ dryRun: false, clientBlock: false, failed: true, commit: true }), ['ROLLBACK']);
  t.same(finishSql({ dryRun: false, clientBlock: true, failed: false, commit: false }), ['ROLLBACK'], 'the request outcome says roll back');

  const modes: [string, string | null][] = [
    ['BEGIN', null],
    ['BEGIN WORK', null],
    ['begin isolation level serializable', 'isolation level serializable'],
    ['BEGIN TRANSACTION READ ONLY, DEFERRABLE', 'READ ONLY, DEFERRABLE'],
    ['START TRANSACTION ISOLATION LEVEL REPEATABLE READ', 'ISOLATION LEVEL REPEATABLE READ'],
    ['COMMIT', null],
  ];
  for (const [sql, expected] of modes) t.equal(transactionModesOf(classifyStatement(sql)), expected, sql);
});

t.test('a refusal statement carries the report and cannot be broken out of', async (t) => {
  const report = { severity: 'ERROR' as const, code: '25P01', message: "rule 'a$b' said $m$ no", hint: 'do $$ this' };
  const statement = refusalStatement(report);
  t.equal(statement.code, '25P01');
  t.equal(statement.message, "rule 'ab' said m no", 'dollar signs dropped');
  t.equal(statement.sql, "DO $txproxy$BEGIN RAISE EXCEPTION USING ERRCODE = '25P01', MESSAGE = $m$rule 'ab' said m no$m$, HINT = $m$do  this$m$; END$txproxy$");
  const odd = refusalStatement({ ...report, code: "25P01'; DROP" });
  t.equal(odd.sql.includes('DROP'), false, 'the code is a SQLSTATE or nothing');
  t.equal(odd.code, 'P0001');
});

t.test('dry-run changes: rows per command, minus what the request undid itself', async (t) => {
  const changes = new DryRunChanges();
  changes.completed('INSERT 0 2', 'INSERT a', false);
  changes.completed('SELECT 5', 'SELECT', false);
  changes.completed('COPY 3', 'COPY t TO STDOUT', false);
  changes.savepoint('create', 'txproxy_client_block');
  changes.completed('UPDATE 4', 'UPDATE b', false);
  changes.savepoint('create', 'inner');
  changes.completed('DELETE 1', 'DELETE c', false);
  changes.savepoint('rollback_to', 'inner');
  changes.completed('MERGE 2', 'MERGE d', false);
  changes.savepoint('release', 'inner');
  changes.savepoint('release', 'txproxy_client_block');
  changes.savepoint('create', 'txproxy_client_block');
  changes.completed('DELETE 9', 'DELETE e', false);
  changes.savepoint('rollback_to', 'txproxy_client_block');
  changes.savepoint('release', 'txproxy_client_block');
  changes.completed('COPY 7', 'COPY t FROM STDIN', true);
  changes.savepoint('rollback_to', 'unknown');
  t.same(
    changes.list.map((c) => `${c.command} ${c.rows} ${c.statement}`),
    ['INSERT 2 INSERT a', 'UPDATE 4 UPDATE b', 'MERGE 2 MERGE d', 'COPY 7 COPY t FROM STDIN'],
  );
  t.equal(changes.rowsTotal, 15);
});

t.test('the clean end of a single-transaction request: the mark, else on_clean_end', async (t) => {
  t.equal(outcomeMarkOf(null), null);
  t.equal(outcomeMarkOf({ route: '/x' }), null);
  t.equal(outcomeMarkOf({ txproxy_outcome: 'commit' }), 'commit');
  t.equal(outcomeMarkOf({ txproxy_outcome: 'rollback' }), 'rollback');
  t.equal(outcomeMarkOf({ txproxy_outcome: 'yes' }), null, 'an unknown value marks nothing');
  t.match(decideCleanEnd('commit', null), { commit: true, reason: /on_clean_end is commit/ });
  t.match(decideCleanEnd('rollback', null), { commit: false, reason: /without an outcome mark and on_clean_end is rollback/ });
  t.match(decideCleanEnd('rollback', 'commit'), { commit: true, reason: /marked txproxy_outcome='commit'/ });
  t.match(decideCleanEnd('commit', 'rollback'), { commit: false, reason: /marked txproxy_outcome='rollback'/ });
});
