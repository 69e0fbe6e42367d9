import t from 'tap';
import { fanOut } from '../../src/tracker/fan-out.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';

const EVENTS = [
  'statementStarted',
  'statementFinished',
  'transactionStarted',
  'transactionEnded',
  'savepoint',
  'requestStarted',
  'ready',
  'sessionError',
  'sessionStarted',
  'sessionEnded',
] as const;

/** A listener of every event that logs `name.event(args)`, reading its own name through `this`. */
function recorder(name: string, log: string[]): TrackerListener {
  const listener: Record<string, unknown> = { name };
  for (const event of EVENTS) {
    listener[event] = function (this: { name: string }, ...args: unknown[]) {
      log.push(`${this.name}.${event}(${args.map((a) => (typeof a === 'object' && a !== null ? 'obj' : String(a))).join(',')})`);
    };
  }
  return listener as TrackerListener;
}

const session = { id: 's' } as SessionInfo;
const statement = {} as StatementRecord;
const tx = {} as TransactionRecord;

function raiseAll(listener: TrackerListener): void {
  listener.statementStarted?.(session, statement);
  listener.statementFinished?.(session, statement);
  listener.transactionStarted?.(session, tx);
  listener.transactionEnded?.(session, tx);
  listener.savepoint?.(session, 'create', 'a', 1, tx);
  listener.requestStarted?.(session, { id: 'r' } as never, null);
  listener.ready?.(session, 'I');
  listener.sessionError?.(session, { code: '57P01' } as never);
  listener.sessionStarted?.(session);
  listener.sessionEnded?.(session, true, 5);
}

for (const count of [2, 3, 7, 8, 9, 17]) {
  t.test(`${count} listeners: every event reaches each, in order, with its arguments and its own this`, async (t) => {
    const log: string[] = [];
    const listeners = Array.from({ length: count }, (_, i) => recorder(`l${i}`, log));
    raiseAll(fanOut(listeners));
    const expected: string[] = [];
    const args: Record<(typeof EVENTS)[number], string> = {
      statementStarted: 'obj,obj',
      statementFinished: 'obj,obj',
      transactionStarted: 'obj,obj',
      transactionEnded: 'obj,obj',
      savepoint: 'obj,create,a,1,obj',
      requestStarted: 'obj,obj,null',
      ready: 'obj,I',
      sessionError: 'obj,obj',
      sessionStarted: 'obj',
      sessionEnded: 'obj,true,5',
    };
    for (const event of EVENTS) for (let i = 0; i < count; i++) expected.push(`l${i}.${event}(${args[event]})`);
    t.same(log, expected);
  });
}

t.test('listeners without an event are passed over; one listener is itself', async (t) => {
  const log: string[] = [];
  const onlyReady: TrackerListener = { ready: (_s, status) => log.push(`ready ${status}`) };
  const onlyEnd: TrackerListener = { sessionEnded: () => log.push('ended') };
  const both = fanOut([onlyReady, {}, onlyEnd]);
  raiseAll(both);
  t.same(log, ['ready I', 'ended']);
  t.equal(fanOut([onlyReady]), onlyReady);
  t.doesNotThrow(() => raiseAll(fanOut([])), 'no listener at all');
});
