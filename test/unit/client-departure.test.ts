import t from 'tap';
import { classifyStatement } from '../../src/sql/classify.js';
import { departure, type DepartureState } from '../../src/proxy/client-departure.js';
import type { StatementRecord } from '../../src/tracker/types.js';

/** Only `info` matters to the decision. */
const statement = (sql: string) => ({ info: classifyStatement(sql) }) as StatementRecord;

const base: DepartureState = { upstreamBlocked: false, ownMessagesAhead: false, status: 'I', pending: 0, inFlight: [] };

t.test('what becomes of the server connection when the client stops sending', async (t) => {
  const cases: [string, Partial<DepartureState>, string][] = [
    ['idle, nothing in flight', {}, 'close'],
    ['an autocommit statement running', { pending: 1, inFlight: [statement('INSERT INTO t VALUES (1)')] }, 'settle'],
    ['an extended batch up to its Sync', { pending: 4, inFlight: [statement('UPDATE t SET a = 1')] }, 'settle'],
    ['idle in a transaction block', { status: 'T' }, 'rollback'],
    ['a statement running in a block', { status: 'T', pending: 1, inFlight: [statement('SELECT pg_sleep(30)')] }, 'rollback'],
    ['a failed block', { status: 'E', pending: 1, inFlight: [statement('SELECT 1')] }, 'rollback'],
    ['in a block, its COMMIT in flight', { status: 'T', pending: 1, inFlight: [statement('SELECT pg_sleep(1)'), statement('COMMIT')] }, 'settle'],
    ['in a block, ROLLBACK then an autocommit write in flight', { status: 'T', pending: 2, inFlight: [statement('ROLLBACK'), statement('INSERT INTO t VALUES (1)')] }, 'settle'],
    ['in a block, PREPARE TRANSACTION in flight', { status: 'T', pending: 1, inFlight: [statement("PREPARE TRANSACTION 'x'")] }, 'settle'],
    ['in a failed block, ROLLBACK TO then COMMIT in flight', { status: 'E', pending: 1, inFlight: [statement('ROLLBACK TO SAVEPOINT a'), statement('COMMIT')] }, 'settle'],
    ['in a block, ROLLBACK TO alone in flight', { status: 'E', pending: 1, inFlight: [statement('ROLLBACK TO SAVEPOINT a')] }, 'rollback'],
    ['the server blocked writing to a client that does not read', { upstreamBlocked: true, pending: 1, inFlight: [statement('SELECT 1')] }, 'drop'],
    ['a policy COMMIT sent ahead of Terminate', { status: 'T', ownMessagesAhead: true }, 'settle'],
  ];
  for (const [name, state, expected] of cases) t.equal(departure({ ...base, ...state }), expected, name);
});
