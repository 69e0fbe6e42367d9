/**
 * One session sending a very large message must not stall the others:
 * txproxy runs every session on one event loop, so a message it reassembles
 * must cost time in proportion to its length, and a Bind's parameter values
 * (which the tracker never reads) are forwarded as they stream in.
 *
 * The large INSERT runs in a child process, so that the client building a
 * 64 MiB message does not block the event loop txproxy runs on here; the
 * round trips of another session through txproxy are timed meanwhile.
 *
 * What txproxy adds to a round trip is the time its event loop is busy
 * with other work, so each round trip is measured in the CPU time this
 * process (txproxy and the measuring client) spent during it. Wall-clock
 * time would also count the scheduler: on a shared machine a round trip
 * straight to PostgreSQL, with no txproxy at all, can take 100 ms.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startPostgres } from '../helpers/postgres.js';
import { eventually, startProxy } from '../helpers/proxy.js';

const MIB = 1024 * 1024;
const ROUND_TRIP_LIMIT_MS = 50;
/** Wall-clock bound, for a stalled event loop (seconds before reassembly was linear), clear of scheduling noise. */
const WALL_CLOCK_LIMIT_MS = 1000;

const postgres = await startPostgres();
await postgres.sql('CREATE TABLE blobs (name text, data bytea)');
const proxy = await startProxy(postgres);
t.teardown(async () => {
  await proxy.stop();
  await postgres.stop();
});

/**
 * Runs `INSERT … VALUES ($1, $2)` with the file's bytes as a binary
 * parameter, in a child process, through txproxy. `sending` is called when
 * the child starts to send it.
 */
async function insertInChild(name: string, file: string, sending: () => void): Promise<void> {
  const script = `
    import pg from 'pg';
    import { readFileSync } from 'node:fs';
    const data = readFileSync(${JSON.stringify(file)});
    const client = new pg.Client(${JSON.stringify(proxy.connection())});
    await client.connect();
    console.log('sending');
    await client.query('INSERT INTO blobs (name, data) VALUES ($1, $2)', [${JSON.stringify(name)}, data]);
    await client.end();
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('sending')) sending();
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`the inserting client failed (${code}): ${stderr}`);
}

t.test('a 64 MiB bytea INSERT through txproxy leaves another session\'s round trips under 50 ms', async (t) => {
  const data = randomBytes(64 * MIB);
  const file = path.join(os.tmpdir(), `txproxy-blob-${process.pid}.bin`);
  writeFileSync(file, data);
  const other = await proxy.client();
  t.teardown(() => other.end());
  await other.query('SELECT 1');

  const name = 'sixty-four mebibytes';
  let done = false;
  let sendingAt = Infinity;
  const insert = insertInChild(name, file, () => (sendingAt = performance.now())).finally(() => (done = true));
  // Round trips from the child's start until the INSERT has committed; those after it began to send are the ones that count.
  const cpuTimes: number[] = [];
  const wallTimes: number[] = [];
  while (!done) {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    await other.query('SELECT 1');
    const cpu = process.cpuUsage(cpuBefore);
    if (started < sendingAt) continue;
    cpuTimes.push((cpu.user + cpu.system) / 1000);
    wallTimes.push(performance.now() - started);
  }
  await insert;

  t.ok(cpuTimes.length > 10, `${cpuTimes.length} round trips while the INSERT was sent and ran`);
  const worstCpu = Math.max(...cpuTimes);
  const worstWall = Math.max(...wallTimes);
  t.ok(worstCpu < ROUND_TRIP_LIMIT_MS, `txproxy's busiest round trip took ${worstCpu.toFixed(1)} ms of its time (${worstWall.toFixed(1)} ms on the wall clock at worst)`);
  t.ok(worstWall < WALL_CLOCK_LIMIT_MS, `no round trip waited for seconds (${worstWall.toFixed(1)} ms at worst)`);
  const stored = await postgres.sql('SELECT length(data) AS n, md5(data) AS md5 FROM blobs WHERE name = $1', [name]);
  t.same(stored.rows[0], { n: data.length, md5: createHash('md5').update(data).digest('hex') }, 'every byte arrived');
  await eventually(() => proxy.transactions.some((tx) => tx.statementLog.some((s) => s.text.startsWith('INSERT INTO blobs')) && tx.outcome === 'commit'));
  const traced = proxy.transactions.find((tx) => tx.statementLog.some((s) => s.text.startsWith('INSERT INTO blobs')))!;
  t.match(traced, { outcome: 'commit', writes: 1, statements: 1 }, 'traced as one committed write');
});
