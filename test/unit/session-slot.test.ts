import t from 'tap';
import { SessionSlot } from '../../src/tracker/session-slot.js';
import type { SessionInfo } from '../../src/tracker/types.js';

const sessionOf = (id: string, slots?: unknown[]) => ({ id, ...(slots === undefined ? {} : { slots }) }) as SessionInfo;

t.test('a slot holds one value per session, found from the session itself', async (t) => {
  const slot = new SessionSlot<string>();
  const a = sessionOf('a', []);
  const b = sessionOf('b', []);
  t.equal(slot.get(a), undefined, 'nothing yet');
  slot.set(a, 'A');
  t.equal(slot.get(a), 'A');
  t.equal(slot.get(b), undefined, 'another session has its own');
  slot.set(b, 'B');
  slot.set(b, 'B2');
  t.equal(slot.get(a), 'A');
  t.equal(slot.get(b), 'B2', 'a value replaced');
  slot.delete(b);
  t.equal(slot.get(b), undefined, 'deleted');
  t.equal(slot.get(a), 'A', 'the other kept');
});

t.test('two slots, as two listeners of one kind hold, never see each other’s values', async (t) => {
  const first = new SessionSlot<number>();
  const second = new SessionSlot<number>();
  const session = sessionOf('s', []);
  first.set(session, 1);
  t.equal(second.get(session), undefined);
  second.set(session, 2);
  t.equal(first.get(session), 1);
  t.equal(second.get(session), 2);
});

t.test('a session made without slots gets them at its first set', async (t) => {
  const slot = new SessionSlot<string>();
  const session = sessionOf('bare');
  t.equal(slot.get(session), undefined);
  t.doesNotThrow(() => slot.delete(session));
  slot.set(session, 'x');
  t.equal(slot.get(session), 'x');
  t.ok(Array.isArray(session.slots));
});
