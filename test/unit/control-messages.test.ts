import t from 'tap';
import { answerPlan, CONTROL_NAME, controlMessages, markOrigins, originOf, type Outgoing } from '../../src/enforcement/control-messages.js';
import { PendingDecisions } from '../../src/enforcement/pending-decisions.js';
import type { DecisionEvent } from '../../src/enforcement/enforcer-ports.js';
import { planClientControl } from '../../src/policy/single-transaction.js';
import { classifyStatement } from '../../src/sql/classify.js';
import type { Entry } from '../../src/tracker/session-tracker.js';
import type { StatementRecord } from '../../src/tracker/types.js';
import { messagesOf } from '../helpers/messages.js';

const types = (bufs: Buffer[]) => messagesOf(Buffer.concat(bufs)).map(([type]) => String.fromCharCode(type)).join('');

t.test("control statements use txproxy's own statement and portal, never the unnamed ones", async (t) => {
  const batch = controlMessages('batch', ['ROLLBACK TO SAVEPOINT x', 'COMMIT'], () => answerPlan({}));
  t.equal(types(batch.map((o) => o.message)), 'CCPBECC' + 'CCPBECC' + 'S', 'close, parse, bind, execute, close, per statement; one Sync');
  t.ok(batch.every((o) => o.hidden), 'answers never reach the client');
  t.same(batch.map((o) => o.plan !== null), [false, false, false, false, true, false, false, false, false, false, false, true, false, false, false], 'the plan rides on each Execute');
  const [close, closeStatement, parse, bind, execute] = batch.map((o) => o.message);
  t.same(close, Buffer.from(`C\0\0\0\x15P${CONTROL_NAME}\0`, 'latin1'), 'Close portal txproxy_control');
  t.same(closeStatement, Buffer.from(`C\0\0\0\x15S${CONTROL_NAME}\0`, 'latin1'), 'Close statement txproxy_control');
  t.ok(parse.includes(Buffer.from(`${CONTROL_NAME}\0ROLLBACK TO SAVEPOINT x\0`)), 'Parse names the statement');
  t.ok(bind.subarray(5).toString('latin1').startsWith(`${CONTROL_NAME}\0${CONTROL_NAME}\0`), 'Bind names portal and statement');
  t.same(execute, Buffer.from(`E\0\0\0\x18${CONTROL_NAME}\0\0\0\0\0`, 'latin1'), 'Execute the named portal, all rows');

  t.equal(types(controlMessages('mid', ['BEGIN'], () => answerPlan({})).map((o) => o.message)), 'CCPBECC', 'inside the client batch: no Sync of ours');
  const simple = controlMessages('simple', ['ROLLBACK TO SAVEPOINT x', 'COMMIT'], () => answerPlan({}));
  t.equal(simple.length, 1);
  t.same(simple[0].message, Buffer.from('Q\0\0\0\x24ROLLBACK TO SAVEPOINT x; COMMIT\0', 'latin1'));
});

const statementRecord = (seq: number, transactionId: string | null = null) => ({ seq, transactionId }) as StatementRecord;
const entryOf = (statements: StatementRecord[]) => ({ statements }) as unknown as Entry;

t.test("statements txproxy sends are marked: its own, or in place of the client's", async (t) => {
  const begin = classifyStatement('BEGIN');
  const rollback = classifyStatement('rollback');
  const [savepoint] = planClientControl(begin, false, false)!;
  t.same(originOf(savepoint, begin), { origin: 'rewritten', clientText: 'BEGIN' });
  const [rollbackTo, release] = planClientControl(rollback, true, false)!;
  t.same(originOf(rollbackTo, rollback), { origin: 'rewritten', clientText: 'rollback' }, "the client's text as it wrote it");
  t.same(originOf(release, rollback), { origin: 'proxy' }, 'the extra step is txproxy\'s own');

  const hidden = entryOf([statementRecord(1), statementRecord(2)]);
  markOrigins(hidden, { message: Buffer.alloc(0), hidden: true, plan: null });
  t.same(hidden.statements.map((s) => s.origin), ['proxy', 'proxy'], 'a hidden message holds only txproxy statements');

  const mixed = entryOf([statementRecord(1), statementRecord(2), statementRecord(3)]);
  const item: Outgoing = { message: Buffer.alloc(0), hidden: false, plan: null, origins: [null, { origin: 'rewritten', clientText: 'COMMIT' }, { origin: 'proxy' }] };
  markOrigins(mixed, item);
  t.same(
    mixed.statements.map((s) => [s.origin, s.clientText]),
    [[undefined, undefined], ['rewritten', 'COMMIT'], ['proxy', undefined]],
    "the client's own statement stays unmarked",
  );
});

t.test('decisions are recorded once their statement started, with its transaction', async (t) => {
  const recorded: DecisionEvent[] = [];
  const pending = new PendingDecisions((event) => recorded.push(event));
  const event = (message: string) => ({ message, transactionId: null }) as DecisionEvent;
  const first = statementRecord(0);
  const second = statementRecord(0);
  pending.add(entryOf([first, second]), [{ index: 1, event: event('on the second') }]);
  pending.add(null, [{ index: 0, event: event('skipped by the server') }]);
  t.same(recorded.map((e) => [e.message, e.transactionId]), [['skipped by the server', null]], 'a skipped message belongs to no transaction');
  pending.recordStarted(false);
  t.equal(recorded.length, 1, 'not before its statement starts');
  first.seq = 1;
  first.transactionId = '1.t1';
  pending.recordStarted(false);
  t.equal(recorded.length, 1, 'the first statement starting does not record the second one\'s');
  second.seq = 2;
  second.transactionId = '1.t1';
  pending.recordStarted(false);
  t.same(recorded.at(-1), { message: 'on the second', transactionId: '1.t1' });
  t.equal(pending.size, 0);
  pending.add(entryOf([statementRecord(0)]), [{ index: 0, event: event('never ran') }]);
  pending.recordStarted(true);
  t.same(recorded.at(-1), { message: 'never ran', transactionId: null }, 'the session ended: recorded as it stands');
});
