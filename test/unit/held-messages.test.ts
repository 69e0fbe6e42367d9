/**
 * A transaction-pooling client's chunks held while it has no server link:
 * small ones copied, large ones kept, the goodbye and the lone Query told
 * apart from everything else.
 */
import t from 'tap';
import { HeldMessages } from '../../src/proxy/held-messages.js';
import { serialize } from '../helpers/messages.js';

const query = serialize.query('SELECT 1');
const terminate = serialize.end();

t.test('a small chunk is copied, so the reused read buffer may be read into again; a large one is kept', async (t) => {
  const held = new HeldMessages();
  const small = Buffer.from(query);
  t.equal(held.push(small), false, 'not kept');
  small.fill(0);
  const large = Buffer.alloc(64 * 1024, 1);
  t.equal(held.push(large), true, 'kept as it is');
  const [first, second] = held.takeAll();
  t.same(first, query, 'the copy is unchanged by later reads');
  t.equal(second, large);
  t.ok(held.empty, 'nothing held after takeAll');
});

t.test('full past 1 MiB held', async (t) => {
  const held = new HeldMessages();
  held.push(Buffer.alloc(1024 * 1024));
  t.notOk(held.full, 'at 1 MiB');
  held.push(Buffer.alloc(1));
  t.ok(held.full, 'past it');
  held.takeAll();
  t.notOk(held.full, 'and not once taken');
});

t.test('the goodbye: a Terminate alone, with nothing held before it', async (t) => {
  const held = new HeldMessages();
  t.ok(held.isGoodbye(terminate));
  t.notOk(held.isGoodbye(Buffer.concat([query, terminate])), 'a Query with it is not');
  held.push(query);
  t.notOk(held.isGoodbye(terminate), 'nor a Terminate behind a held Query');
  t.notOk(held.endsWithTerminate());
  held.push(terminate);
  t.ok(held.endsWithTerminate(), 'though the held messages now end with it');
});

t.test('a lone Query: exactly one simple Query message, and nothing else held', async (t) => {
  const lone = (...chunks: Buffer[]) => {
    const held = new HeldMessages();
    for (const chunk of chunks) held.push(chunk);
    return held.loneQuery();
  };
  t.same(lone(query), query);
  t.equal(lone(), null, 'nothing held');
  t.equal(lone(Buffer.concat([query, query])), null, 'two Queries in one chunk');
  t.equal(lone(query, query), null, 'two chunks');
  t.equal(lone(Buffer.concat([query, terminate])), null, 'a Query and its Terminate');
  t.equal(lone(serialize.parse({ text: 'SELECT 1' })), null, 'a Parse');
  for (let cut = 1; cut < query.length; cut++) t.equal(lone(query.subarray(0, cut)), null, `a Query cut at ${cut}`);
});
