import t from 'tap';
import { PerSession } from '../../src/tracker/per-session.js';

t.test('PerSession answers as a Map does, whichever entry it remembers', async (t) => {
  const a = { id: 'a' };
  const b = { id: 'b' };
  const slots = new PerSession<object, string>();
  t.equal(slots.get(a), undefined, 'nothing yet');
  slots.set(a, 'A');
  t.equal(slots.get(a), 'A');
  t.equal(slots.get(b), undefined, 'another key, looked up after a');
  slots.set(b, 'B');
  t.equal(slots.get(a), 'A', 'a, after b was set');
  t.equal(slots.get(b), 'B');
  slots.set(b, 'B2');
  t.equal(slots.get(b), 'B2', 'a value replaced');
  t.ok(slots.delete(b));
  t.equal(slots.get(b), undefined, 'the entry remembered last, deleted');
  t.notOk(slots.has(b));
  t.equal(slots.get(a), 'A');
  t.ok(slots.delete(a));
  t.equal(slots.size, 0);
  t.same([...slots.values()], []);
  t.notOk(slots.delete(a), 'deleted twice');
});

t.test('string keys: equal strings are one key', async (t) => {
  const slots = new PerSession<string, number>();
  slots.set('k3x9qa-7', 7);
  t.equal(slots.get(['k3x9qa', '7'].join('-')), 7, 'a string made elsewhere');
  t.ok(slots.has('k3x9qa-7'));
});
