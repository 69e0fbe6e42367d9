/**
 * Server-prepared statements as JDBC uses them (pgjdbc names them S_1,
 * S_2 … and re-uses them for the life of the connection), byte for byte
 * through transaction pooling on a pool of two: every batch goes both to
 * txproxy and straight to the test server, and the client must get the same
 * answers from both, while txproxy moves the client between server
 * connections under it.
 *
 * Errors are compared field by field except the server's source location
 * (F, L, R: the file, line and function of the PostgreSQL source that
 * raised it), which no client acts on.
 */
import t, { type Test } from 'tap';
import pg from 'pg';
import { serialize } from '../helpers/messages.js';
import { startPostgres } from '../helpers/postgres.js';
import { startTransactionProxy } from '../helpers/transaction-pool.js';
import { dataRowValues, errorOf, RawClient, type RawMessage } from '../helpers/raw-client.js';

const postgres = await startPostgres();
const proxy = await startTransactionProxy(postgres, 2);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

const INT4 = 23;
const TEXT = 25;
const parse = (name: string, text: string, types: number[] = []) => serialize.parse({ name, text, types });
const bind = (statement: string, values: (string | null)[] = []) => serialize.bind({ portal: '', statement, values });
const describeS = (name: string) => serialize.describe({ type: 'S', name });
const describeP = () => serialize.describe({ type: 'P', name: '' });
const execute = () => serialize.execute({ portal: '', rows: 0 });
const closeS = (name: string) => serialize.close({ type: 'S', name });
const sync = () => serialize.sync();
const query = (sql: string) => serialize.query(sql);

/** What a client can see of each message: errors by their fields, everything else by its bytes. */
function render(messages: RawMessage[]): string[] {
  return messages.map((m) => {
    switch (m.type) {
      case 'E':
      case 'N': {
        const fields = errorOf(m);
        return `${m.type}:${JSON.stringify(fields, Object.keys(fields).sort())}`;
      }
      case 'D':
        return `D:${JSON.stringify(dataRowValues(m))}`;
      case 'C':
        return `C:${m.body.toString('utf8', 0, m.body.length - 1)}`;
      case 'Z':
        return `Z:${String.fromCharCode(m.body[0])}`;
      default:
        return m.body.length === 0 ? m.type : `${m.type}:${m.body.toString('hex')}`;
    }
  });
}

/** ReadyForQuery messages a batch ends in: one per Sync and per Query. */
function cycles(batch: Buffer[]): number {
  return batch.filter((m) => m[0] === 0x53 || m[0] === 0x51).length;
}

const connect = (port: number, host: string, application_name: string) =>
  RawClient.connect({ port, host, user: postgres.user, password: postgres.password, params: { application_name } });

const direct = await connect(postgres.port, postgres.host, 'jdbc-direct');
const pooled = await connect(proxy.port, '127.0.0.1', 'jdbc');
t.teardown(async () => {
  await direct.close();
  await pooled.close();
});

/** The server backend the pooled client's session used last. */
function pooledPid(): number {
  for (const session of proxy.app.server.sessions) if (session.info.applicationName === 'jdbc') return session.info.backendPid;
  throw new Error('the pooled client has no session');
}

/** Sends `batch` to both, in one write each; the pooled client's answers must be the direct ones. */
async function same(t: Test, what: string, batch: Buffer[], expected: string[]): Promise<string[]> {
  direct.send(...batch);
  pooled.send(...batch);
  const fromServer = render(await direct.readyForQuery(cycles(batch), 20_000));
  const fromProxy = render(await pooled.readyForQuery(cycles(batch), 20_000));
  t.same(fromProxy, fromServer, `${what}: the answers PostgreSQL gives`);
  const brief = fromServer.map((line) => (line.startsWith('E:') ? `E:${JSON.parse(line.slice(2)).code}` : line.replace(/^([1-3nstT]):.*/, '$1')));
  t.same(brief, expected, `${what}: ${expected.join(' ')}`);
  return fromProxy;
}

/**
 * Two other clients take both server connections in transactions; the one
 * on backend `pid` keeps it, so the pooled client's next transaction runs
 * on the other. Returns the release of the one kept.
 */
async function occupy(pid: number): Promise<() => Promise<void>> {
  const holders = [await proxy.client(), await proxy.client()];
  const pids: number[] = [];
  for (const holder of holders) {
    await holder.query('BEGIN');
    pids.push((await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
  }
  const keep = pids.indexOf(pid);
  if (keep === -1 || pids[0] === pids[1]) throw new Error(`holders on ${pids.join(', ')}, wanted one on ${pid}`);
  const free: pg.Client = holders[1 - keep];
  await free.query('COMMIT');
  await free.end();
  return async () => {
    await holders[keep].query('COMMIT');
    await holders[keep].end();
  };
}

/** Runs `step` with the server the pooled client used last held by another client: it must move. */
async function elsewhere(t: Test, step: () => Promise<unknown>): Promise<void> {
  const before = pooledPid();
  const release = await occupy(before);
  try {
    await step();
    t.not(pooledPid(), before, `ran on another backend than ${before}`);
  } finally {
    await release();
  }
}

t.test('S_1 prepared once, re-used on other backends, closed, parsed again with other text', async (t) => {
  await same(t, 'Parse S_1 and Describe it', [parse('S_1', 'SELECT $1::int4 + 1 AS n, $2::text AS t', [INT4, TEXT]), describeS('S_1'), sync()], ['1', 't', 'T', 'Z:I']);

  await elsewhere(t, () =>
    same(t, 'Bind S_1 on the other backend', [bind('S_1', ['41', 'a']), describeP(), execute(), sync()], ['2', 'T', 'D:["42","a"]', 'C:SELECT 1', 'Z:I']),
  );
  await elsewhere(t, async () => {
    await same(t, 'BEGIN', [query('BEGIN')], ['C:BEGIN', 'Z:T']);
    const inside = pooledPid();
    await same(t, 'Bind S_1 in a transaction', [bind('S_1', ['1', 'b']), execute(), sync()], ['2', 'D:["2","b"]', 'C:SELECT 1', 'Z:T']);
    await same(t, 'and again, pipelined', [bind('S_1', ['2', 'c']), execute(), sync(), bind('S_1', ['3', 'd']), execute(), sync()], ['2', 'D:["3","c"]', 'C:SELECT 1', 'Z:T', '2', 'D:["4","d"]', 'C:SELECT 1', 'Z:T']);
    t.equal(pooledPid(), inside, 'the transaction stays on its backend');
    await same(t, 'COMMIT', [query('COMMIT')], ['C:COMMIT', 'Z:I']);
  });

  await same(t, 'Parse of S_1, which exists', [parse('S_1', 'SELECT 2'), bind('S_1'), execute(), sync()], ['E:42P05', 'Z:I']);
  await same(t, 'S_1 is still the first text', [bind('S_1', ['5', 'e']), execute(), sync()], ['2', 'D:["6","e"]', 'C:SELECT 1', 'Z:I']);
  await same(t, 'BEGIN', [query('BEGIN')], ['C:BEGIN', 'Z:T']);
  await same(t, 'Parse of S_1 in a transaction fails it', [parse('S_1', 'SELECT 2'), sync()], ['E:42P05', 'Z:E']);
  await same(t, 'a failed transaction refuses S_1 too', [bind('S_1', ['1', 'f']), execute(), sync()], ['E:25P02', 'Z:E']);
  await same(t, 'ROLLBACK', [query('ROLLBACK')], ['C:ROLLBACK', 'Z:I']);

  await same(t, 'Close S_1', [closeS('S_1'), sync()], ['3', 'Z:I']);
  await same(t, 'Bind of S_1, closed', [bind('S_1', ['1', 'g']), execute(), sync()], ['E:26000', 'Z:I']);
  await same(t, 'Describe of S_1, closed', [describeS('S_1'), sync()], ['E:26000', 'Z:I']);
  await same(t, 'Close of S_1 again is no error', [closeS('S_1'), sync()], ['3', 'Z:I']);
  await same(t, 'BEGIN', [query('BEGIN')], ['C:BEGIN', 'Z:T']);
  await same(t, 'Bind of S_1 in a transaction fails it', [bind('S_1', ['1', 'h']), execute(), sync()], ['E:26000', 'Z:E']);
  await same(t, 'ROLLBACK', [query('ROLLBACK')], ['C:ROLLBACK', 'Z:I']);

  await same(t, 
    'S_1 parsed again with other text, run in the same batch',
    [parse('S_1', 'SELECT $1::text || $2::text AS joined', [TEXT, TEXT]), bind('S_1', ['x', 'y']), describeP(), execute(), sync()],
    ['1', '2', 'T', 'D:["xy"]', 'C:SELECT 1', 'Z:I'],
  );
  await elsewhere(t, () => same(t, 'the new S_1 on the other backend', [bind('S_1', ['p', 'q']), execute(), sync()], ['2', 'D:["pq"]', 'C:SELECT 1', 'Z:I']));
  await same(t, 
    'Close and Parse of S_1 in one batch, as pgjdbc replaces a statement',
    [closeS('S_1'), parse('S_1', 'SELECT $1::int4 * 3 AS tripled', [INT4]), bind('S_1', ['4']), execute(), sync()],
    ['3', '1', '2', 'D:["12"]', 'C:SELECT 1', 'Z:I'],
  );
  await elsewhere(t, () => same(t, 'the third S_1 elsewhere', [bind('S_1', ['5']), execute(), sync()], ['2', 'D:["15"]', 'C:SELECT 1', 'Z:I']));
});

t.test('a Parse that fails creates nothing; DEALLOCATE ALL forgets every statement', async (t) => {
  await same(t, 'Parse S_2 with a syntax error', [parse('S_2', 'SELEC 1'), bind('S_2'), execute(), sync()], ['E:42601', 'Z:I']);
  await same(t, 'S_2 does not exist', [bind('S_2'), execute(), sync()], ['E:26000', 'Z:I']);
  await same(t, 'S_2 parsed properly', [parse('S_2', 'SELECT 2 AS two'), sync()], ['1', 'Z:I']);
  await same(t, 'S_3', [parse('S_3', 'SELECT 3 AS three'), bind('S_3'), execute(), sync()], ['1', '2', 'D:["3"]', 'C:SELECT 1', 'Z:I']);
  await same(t, 'DEALLOCATE ALL', [query('DEALLOCATE ALL')], ['C:DEALLOCATE ALL', 'Z:I']);
  await same(t, 'S_2 is gone', [bind('S_2'), execute(), sync()], ['E:26000', 'Z:I']);
  await elsewhere(t, () => same(t, 'S_3 is gone on every backend', [bind('S_3'), execute(), sync()], ['E:26000', 'Z:I']));
  await same(t, 'S_2 can be parsed again', [parse('S_2', 'SELECT 22 AS two'), bind('S_2'), execute(), sync()], ['1', '2', 'D:["22"]', 'C:SELECT 1', 'Z:I']);
});

t.test("another client's S_1 is its own", async (t) => {
  const other = await connect(proxy.port, '127.0.0.1', 'jdbc-other');
  t.teardown(() => other.close());
  await same(t, 'S_1 for the first client', [parse('S_1', 'SELECT 1 AS mine'), sync()], ['1', 'Z:I']);
  other.send(parse('S_1', 'SELECT 99 AS theirs'), bind('S_1'), execute(), sync());
  const answers = await other.readyForQuery();
  t.same(render(answers).filter((line) => !/^[1-3T]/.test(line)), ['D:["99"]', 'C:SELECT 1', 'Z:I'], 'no 42P05: the name is free for this client');
  await same(t, 'the first client still has its own S_1', [bind('S_1'), execute(), sync()], ['2', 'D:["1"]', 'C:SELECT 1', 'Z:I']);
});
