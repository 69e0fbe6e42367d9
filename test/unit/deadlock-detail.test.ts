import t from 'tap';
import { describeWait, parseDeadlockDetail } from '../../src/locks/deadlock-detail.js';

// DETAIL texts as PostgreSQL 18 sent them to the client (ErrorResponse field D) ...
const TWO_ROW_LOCKS =
  'Process 25445 waits for ShareLock on transaction 755; blocked by process 25444.\n' +
  'Process 25444 waits for ShareLock on transaction 756; blocked by process 25445.';

const THREE_PROCESSES =
  'Process 25483 waits for ShareLock on transaction 757; blocked by process 25481.\n' +
  'Process 25481 waits for ShareLock on transaction 758; blocked by process 25482.\n' +
  'Process 25482 waits for ShareLock on transaction 759; blocked by process 25483.';

const ADVISORY_AND_TABLE =
  'Process 25527 waits for ExclusiveLock on advisory lock [5,0,42,1]; blocked by process 25526.\n' +
  'Process 25526 waits for AccessShareLock on relation 16384 of database 5; blocked by process 25527.';

// ... and as the server log wrote the same deadlocks: every line after the
// first indented with a tab, then each process's query, some over several lines.
const THREE_PROCESSES_LOG =
  'Process 25483 waits for ShareLock on transaction 757; blocked by process 25481.\n' +
  '\tProcess 25481 waits for ShareLock on transaction 758; blocked by process 25482.\n' +
  '\tProcess 25482 waits for ShareLock on transaction 759; blocked by process 25483.\n' +
  '\tProcess 25483: UPDATE items\n' +
  "\t   SET name = 'y'\n" +
  '\t WHERE id = 1\n' +
  '\tProcess 25481: UPDATE items\n' +
  "\t   SET name = 'y'\n" +
  '\t WHERE id = 2\n' +
  '\tProcess 25482: UPDATE items\n' +
  "\t   SET name = 'y'\n" +
  '\t WHERE id = 3';

const TWO_ROW_LOCKS_LOG =
  'Process 25445 waits for ShareLock on transaction 755; blocked by process 25444.\n' +
  '\tProcess 25444 waits for ShareLock on transaction 756; blocked by process 25445.\n' +
  '\tProcess 25445: SELECT * FROM items WHERE id = 1 FOR UPDATE\n' +
  '\tProcess 25444: SELECT * FROM items WHERE id = 2 FOR UPDATE';

t.test('two processes waiting on each other’s row locks', async (t) => {
  t.same(parseDeadlockDetail(TWO_ROW_LOCKS), [
    { pid: 25445, mode: 'ShareLock', target: 'transaction 755', blockedBy: 25444, query: null },
    { pid: 25444, mode: 'ShareLock', target: 'transaction 756', blockedBy: 25445, query: null },
  ]);
});

t.test('a cycle of three, in the order the server listed it', async (t) => {
  const cycle = parseDeadlockDetail(THREE_PROCESSES);
  t.same(cycle.map((p) => [p.pid, p.blockedBy]), [
    [25483, 25481],
    [25481, 25482],
    [25482, 25483],
  ]);
  t.same(cycle.map(describeWait), ['ShareLock on transaction 757', 'ShareLock on transaction 758', 'ShareLock on transaction 759']);
});

t.test('other lock targets keep their whole description', async (t) => {
  t.same(parseDeadlockDetail(ADVISORY_AND_TABLE), [
    { pid: 25527, mode: 'ExclusiveLock', target: 'advisory lock [5,0,42,1]', blockedBy: 25526, query: null },
    { pid: 25526, mode: 'AccessShareLock', target: 'relation 16384 of database 5', blockedBy: 25527, query: null },
  ]);
  const tuple = parseDeadlockDetail('Process 7 waits for ExclusiveLock on tuple (0,1) of relation 16384 of database 5; blocked by process 8.');
  t.same(tuple.map(describeWait), ['ExclusiveLock on tuple (0,1) of relation 16384 of database 5']);
});

t.test("the server log's form: tab-indented, with each process's query", async (t) => {
  t.same(parseDeadlockDetail(TWO_ROW_LOCKS_LOG).map((p) => [p.pid, p.query]), [
    [25445, 'SELECT * FROM items WHERE id = 1 FOR UPDATE'],
    [25444, 'SELECT * FROM items WHERE id = 2 FOR UPDATE'],
  ]);
  const cycle = parseDeadlockDetail(THREE_PROCESSES_LOG);
  t.same(cycle.map((p) => [p.pid, p.blockedBy]), [
    [25483, 25481],
    [25481, 25482],
    [25482, 25483],
  ]);
  t.same(cycle.map((p) => p.query), [
    "UPDATE items\n   SET name = 'y'\n WHERE id = 1",
    "UPDATE items\n   SET name = 'y'\n WHERE id = 2",
    "UPDATE items\n   SET name = 'y'\n WHERE id = 3",
  ]);
});

t.test('query lines without the tab indentation', async (t) => {
  const detail = THREE_PROCESSES_LOG.replace(/\n\t/g, '\n');
  t.same(parseDeadlockDetail(detail).map((p) => p.query), [
    "UPDATE items\n   SET name = 'y'\n WHERE id = 1",
    "UPDATE items\n   SET name = 'y'\n WHERE id = 2",
    "UPDATE items\n   SET name = 'y'\n WHERE id = 3",
  ]);
});

t.test('a query line for a pid outside the cycle is not a process', async (t) => {
  const cycle = parseDeadlockDetail(TWO_ROW_LOCKS + '\nProcess 999: SELECT 1');
  t.equal(cycle.length, 2);
  t.same(cycle.map((p) => p.query), [null, null]);
});

t.test('text that is not an English deadlock DETAIL yields no processes', async (t) => {
  t.same(parseDeadlockDetail(''), []);
  t.same(parseDeadlockDetail('Prozess 25445 wartet auf ShareLock-Sperre für Transaktion 755; blockiert von Prozess 25444.'), []);
  t.same(parseDeadlockDetail('Process 1 waits for ShareLock on transaction 5; blocked by process x.'), []);
});
