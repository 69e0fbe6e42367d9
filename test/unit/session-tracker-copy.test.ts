/**
 * COPY FROM STDIN in the tracker. The server ignores Sync in copy-in mode,
 * so a Sync written before the copy data (libpq's PQexecParams writes
 * Parse/Bind/Describe/Execute/Sync, then the data, CopyDone and another
 * Sync) gets no ReadyForQuery. Counted as in flight, it would take the next
 * statement's ReadyForQuery and leave every later answer one message off.
 */
import t from 'tap';
import { Backend } from '../../src/protocol/codes.js';
import { serialize, server } from '../helpers/messages.js';
import { trackerHarness } from '../helpers/tracker-harness.js';

const copyInResponse = () => Buffer.from([Backend.CopyInResponse, 0, 0, 0, 7, 0, 0, 0]);
const execParams = (text: string) => [serialize.parse({ text }), serialize.bind({}), serialize.describe({ type: 'P' }), serialize.execute({}), serialize.sync()];
const data = (text: string) => serialize.copyData(Buffer.from(text));
const afterDescribe = () => [server.parseComplete(), server.bindComplete(), server.noData()];

const summary = (h: ReturnType<typeof trackerHarness>) => ({
  statements: h.statements.map((s) => [s.text, s.commandTag, s.error?.code ?? null, s.copy]),
  transactions: h.transactions.map((x) => x.outcome),
  pending: h.tracker.pending,
});

t.test('libpq style, the client waiting for CopyInResponse: the Sync before the data is ignored', async (t) => {
  const h = trackerHarness();
  h.client(...execParams('COPY t FROM STDIN'));
  h.server(...afterDescribe(), copyInResponse());
  h.client(data('1\n'), serialize.copyDone(), serialize.sync());
  h.server(server.complete('COPY 1'), server.ready('I'));
  h.client(serialize.query('SELECT 1'));
  h.server(server.rowDescription(), server.dataRow(), server.complete('SELECT 1'), server.ready('I'));
  t.same(summary(h), {
    statements: [
      ['COPY t FROM STDIN', 'COPY 1', null, 'in'],
      ['SELECT 1', 'SELECT 1', null, null],
    ],
    transactions: ['commit', 'commit'],
    pending: 0,
  });
});

t.test('everything written at once: only the Syncs before CopyDone are ignored', async (t) => {
  const h = trackerHarness();
  h.client(...execParams('COPY t FROM STDIN'), data('1\n'), serialize.copyDone(), serialize.sync(), ...execParams('SELECT 2'));
  h.server(...afterDescribe(), copyInResponse(), server.complete('COPY 1'), server.ready('I'));
  t.equal(h.tracker.pending, 5, 'the second batch is still in flight');
  h.server(server.parseComplete(), server.bindComplete(), server.rowDescription(), server.dataRow(), server.complete('SELECT 1'), server.ready('I'));
  t.same(summary(h), {
    statements: [
      ['COPY t FROM STDIN', 'COPY 1', null, 'in'],
      ['SELECT 2', 'SELECT 1', null, null],
    ],
    transactions: ['commit', 'commit'],
    pending: 0,
  });
});

t.test('CopyDone right behind the Execute, the Sync after it: nothing is ignored', async (t) => {
  const h = trackerHarness();
  h.client(serialize.parse({ text: 'COPY t FROM STDIN' }), serialize.bind({}), serialize.execute({}), data('1\n'), serialize.copyDone(), serialize.sync());
  h.server(server.parseComplete(), server.bindComplete(), copyInResponse(), server.complete('COPY 1'), server.ready('I'));
  t.same(summary(h), { statements: [['COPY t FROM STDIN', 'COPY 1', null, 'in']], transactions: ['commit'], pending: 0 });
});

t.test('a Sync sent in the middle of the copy data is ignored too', async (t) => {
  const h = trackerHarness();
  h.client(...execParams('COPY t FROM STDIN'));
  h.server(...afterDescribe(), copyInResponse());
  h.client(data('1\n'), serialize.sync(), data('2\n'), serialize.copyDone(), serialize.sync());
  h.server(server.complete('COPY 2'), server.ready('I'));
  t.same(summary(h), { statements: [['COPY t FROM STDIN', 'COPY 2', null, 'in']], transactions: ['commit'], pending: 0 });
});

t.test('an error in the copy data: the server skips to the Sync after CopyDone', async (t) => {
  const h = trackerHarness();
  h.client(...execParams('COPY t FROM STDIN'));
  h.server(...afterDescribe(), copyInResponse());
  h.client(data('oops\n'));
  h.server(server.error('22P02', 'invalid input syntax for type integer'));
  h.client(serialize.copyDone(), serialize.sync());
  h.server(server.ready('I'));
  h.client(serialize.query('SELECT 1'));
  h.server(server.complete('SELECT 1'), server.ready('I'));
  t.same(summary(h), {
    statements: [
      ['COPY t FROM STDIN', null, '22P02', 'in'],
      ['SELECT 1', 'SELECT 1', null, null],
    ],
    transactions: ['failed', 'commit'],
    pending: 0,
  });
});

t.test('an error before the client ends the copy: its next Sync counts, CopyDone or not', async (t) => {
  const h = trackerHarness();
  h.client(...execParams('COPY t FROM STDIN'));
  h.server(...afterDescribe(), copyInResponse());
  h.server(server.error('57014', 'canceling statement due to user request'));
  h.client(serialize.sync());
  h.server(server.ready('I'));
  t.same(summary(h), { statements: [['COPY t FROM STDIN', null, '57014', 'in']], transactions: ['failed'], pending: 0 });
});

t.test('CopyFail in the simple protocol', async (t) => {
  const h = trackerHarness();
  h.client(serialize.query('COPY t FROM STDIN'));
  h.server(copyInResponse());
  h.client(data('1\n'), serialize.copyFail('gave up'));
  h.server(server.error('57014', 'COPY from stdin failed: gave up'), server.ready('I'));
  h.client(serialize.query('SELECT 1'));
  h.server(server.complete('SELECT 1'), server.ready('I'));
  t.same(summary(h), {
    statements: [
      ['COPY t FROM STDIN', null, '57014', 'in'],
      ['SELECT 1', 'SELECT 1', null, null],
    ],
    transactions: ['failed', 'commit'],
    pending: 0,
  });
});
