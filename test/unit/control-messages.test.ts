import t from 'tap';
import { answerPlan, CONTROL_NAME, controlMessages } from '../../src/proxy/control-messages.js';
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
