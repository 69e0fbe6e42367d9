import t from 'tap';
import { Backend } from '../../src/protocol/codes.js';
import { DeferredMessages } from '../../src/proxy/deferred-messages.js';

t.test('messages come back in order, runs of DataRows counted in one slot', async (t) => {
  const deferred = new DeferredMessages();
  const chunk = Buffer.from('0123456789');
  deferred.push(Backend.RowDescription, chunk, 0, 2);
  deferred.dataRow();
  deferred.dataRow();
  deferred.dataRow();
  deferred.push(Backend.CommandComplete, chunk, 2, 4);
  deferred.push(Backend.ReadyForQuery, chunk, 4, 6);
  deferred.dataRow();
  const seen: string[] = [];
  deferred.drain(
    (type, buf, start, end) => seen.push(`${String.fromCharCode(type)} ${buf.toString('latin1', start, end)}`),
    (count) => seen.push(`rows ${count}`),
  );
  t.same(seen, ['T 01', 'rows 3', 'C 23', 'Z 45', 'rows 1']);
  t.ok(deferred.empty);
  const again: string[] = [];
  deferred.drain(() => again.push('x'), () => again.push('y'));
  t.same(again, [], 'drained messages are gone');
});

t.test('what is pushed during a drain is handed over in the same drain, in order', async (t) => {
  const deferred = new DeferredMessages();
  const chunk = Buffer.from('ab');
  deferred.push(Backend.CommandComplete, chunk, 0, 1);
  const seen: number[] = [];
  deferred.drain(
    (type) => {
      seen.push(type);
      if (seen.length === 1) deferred.push(Backend.ReadyForQuery, chunk, 1, 2);
    },
    () => undefined,
  );
  // The first push happens once only (seen has one entry then).
  t.same(seen, [Backend.CommandComplete, Backend.ReadyForQuery]);
  t.ok(deferred.empty);
});
