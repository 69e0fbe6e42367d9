/**
 * A SessionTracker fed scripted protocol bytes, with a fake clock and the
 * events it emitted collected.
 */
import { Backend } from '../../src/protocol/codes.js';
import { SessionTracker } from '../../src/tracker/session-tracker.js';
import type { SessionInfo, StatementRecord, TrackerListener, TransactionRecord } from '../../src/tracker/types.js';
import { messagesOf } from './messages.js';

export function trackerHarness() {
  const statements: StatementRecord[] = [];
  const transactions: TransactionRecord[] = [];
  const savepoints: string[] = [];
  const listener: TrackerListener = {
    statementFinished: (_s, st) => statements.push(st),
    transactionEnded: (_s, tx) => transactions.push(tx),
    savepoint: (_s, op, name, depth) => savepoints.push(`${op} ${name} ${depth}`),
  };
  const session: SessionInfo = {
    id: 's',
    user: 'u',
    database: 'd',
    applicationName: '',
    clientAddress: '127.0.0.1',
    startedAt: 0,
    backendPid: 1,
    replication: false,
  };
  let now = 0;
  const tracker = new SessionTracker(session, listener, { wall: () => now, mono: () => now });
  tracker.start();
  return {
    tracker,
    statements,
    transactions,
    savepoints,
    tick(ms: number) {
      now += ms;
    },
    /** Client messages, as the proxy hands them over (every type; the tracker ignores what it does not need). */
    client(...bufs: Buffer[]) {
      for (const [type, buf, start, end] of messagesOf(Buffer.concat(bufs))) tracker.onClientMessage(type, buf, start, end);
    },
    /** Server messages; DataRow goes to the header-only counter, as in the proxy. */
    server(...bufs: Buffer[]) {
      for (const [type, buf, start, end] of messagesOf(Buffer.concat(bufs))) {
        if (type === Backend.DataRow) tracker.onDataRow();
        else tracker.onServerMessage(type, buf, start, end);
      }
    },
  };
}
