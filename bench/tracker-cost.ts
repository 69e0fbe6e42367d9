/**
 * What txproxy's own bookkeeping costs per transaction, without sockets:
 * a session tracker fed pgbench's select-only or TPC-B transaction (each
 * Query, then the server's answer: RowDescription, DataRow, CommandComplete
 * and ReadyForQuery) over and over, with the tracker listeners an App
 * builds for each configuration: the trace writer, tail sampling, metrics,
 * OpenTelemetry spans, the lock monitor and the policies.
 *
 *   npm run build && node dist/bench/tracker-cost.js [--cold] [select-only|tpcb]
 *
 * It needs no PostgreSQL: no session registers with the App, so its lock
 * monitor never queries one, and pgbench's statements name no parent span,
 * so nothing is exported. The figure is the fastest of 7 rounds, in ns per
 * transaction, on one core of whatever else the machine is doing; each
 * setup is measured in a process of its own.
 *
 * Warm, the figure is the work itself. `--cold` (see ColdCaches) comes
 * closer to what the same work costs in a proxy under load: on two shared
 * cores it was 2 to 3 times the warm figure, as was the CPU time txproxy
 * spent per transaction beyond the bare pipe's in the benchmark.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { App } from '../src/app.js';
import { Backend } from '../src/protocol/codes.js';
import { commandComplete, readyForQuery } from '../src/protocol/encode.js';
import { serialize } from '../src/protocol/frontend-messages.js';
import { buildConfig } from '../src/config/load.js';
import { openTraceWriter, ndjsonSink } from '../src/trace/trace-sink.js';
import { SessionTracker } from '../src/tracker/session-tracker.js';
import type { SessionInfo } from '../src/tracker/types.js';
import { parseUpstreamUrl } from '../src/upstream/target.js';

interface Setup {
  name: string;
  description: string;
  /** Configuration on top of the defaults. */
  config: Record<string, unknown>;
  traced: boolean;
}

/** An OTLP endpoint nothing listens on: spans would fail to export, but none are made. */
const UNUSED_ENDPOINT = 'http://127.0.0.1:9';

const SETUPS: Setup[] = [
  { name: 'tracking', description: 'the tracker and the lock monitor only: trace off, metrics off', config: { http: 'off' }, traced: false },
  { name: 'metrics', description: 'tracking and metrics (the admin endpoint on)', config: { http: '127.0.0.1:0' }, traced: false },
  {
    name: 'production',
    description: "as bench's txproxy-prod: metrics, trace tail-sampled to 1 %, OpenTelemetry export on",
    config: { http: '127.0.0.1:0', trace: { keep: { sample: 0.01 } }, otel: { endpoint: UNUSED_ENDPOINT } },
    traced: true,
  },
  { name: 'traced', description: 'metrics, every statement traced to a file', config: { http: '127.0.0.1:0' }, traced: true },
];

/** Statements per round: 300,000 select-only transactions. */
const TRANSACTIONS = 300_000;
const ROUNDS = 7;

/** What one socket read brings: the client's Query, or the server's answer to it. */
interface Chunk {
  fromClient: boolean;
  messages: Buffer[];
}

/** A workload's transaction in its variants: the same statements with other number literals. */
type Workload = Chunk[][];
const VARIANTS = 1000;

/** A RowDescription of no field: the tracker reads only its type. */
const ROW_DESCRIPTION = Buffer.from([Backend.RowDescription, 0, 0, 0, 6, 0, 0]);
/** A DataRow's header is all the relay shows the tracker (onDataRow). */
const DATA_ROW = Buffer.from([Backend.DataRow, 0, 0, 0, 6, 0, 0]);

/** A simple-protocol statement and the server's answer, in each variant. */
type Statement = (variant: number) => Chunk[];
function statement(sql: (variant: number) => string, tag: string, status: 'I' | 'T', rows = false): Statement {
  const answer = [...(rows ? [ROW_DESCRIPTION, DATA_ROW] : []), commandComplete(tag), readyForQuery(status)];
  return (variant) => [
    { fromClient: true, messages: [serialize.query(sql(variant))] },
    { fromClient: false, messages: answer },
  ];
}

/** Statements in a workload's transaction: one Query each. */
function statementsOf(workload: Workload): number {
  return workload[0].filter((chunk) => chunk.fromClient).length;
}

function workload(...statements: Statement[]): Workload {
  return inOneBuffer(Array.from({ length: VARIANTS }, (_, variant) => statements.flatMap((make) => make(variant))));
}

/**
 * The workload with the client's messages moved into one buffer, as a
 * session's reads land in one in the proxy (reused-read-buffer.ts): what
 * the tracker keeps per buffer (shape-bytes.ts) is then kept as it is there.
 */
function inOneBuffer(transactions: Chunk[][]): Chunk[][] {
  const sent = transactions.flatMap((chunks) => chunks.filter((chunk) => chunk.fromClient).flatMap((chunk) => chunk.messages));
  const buffer = Buffer.concat(sent);
  let offset = 0;
  const moved = (message: Buffer) => {
    const view = buffer.subarray(offset, offset + message.length);
    offset += message.length;
    return view;
  };
  return transactions.map((chunks) => chunks.map((chunk) => (chunk.fromClient ? { fromClient: true, messages: chunk.messages.map(moved) } : chunk)));
}

/**
 * The random values of a variant, drawn as pgbench draws them at scale 10:
 * the literals, and so the texts' lengths, vary as they do in its runs.
 */
function draw(variant: number): { aid: number; tid: number; bid: number; delta: number } {
  // A fixed generator (a linear congruential one), so every run feeds the same texts.
  let seed = variant + 1;
  const next = (low: number, high: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return low + (seed % (high - low + 1));
  };
  return { aid: next(1, 1_000_000), tid: next(1, 100), bid: next(1, 10), delta: next(-5000, 5000) };
}

/**
 * `--cold`: the caches hold other data each time a chunk comes, as on a
 * busy server, where the kernel, PostgreSQL and the other sessions run
 * between two reads of a session's socket. That is where txproxy runs, and
 * its bookkeeping then costs a few times what it costs warm.
 */
class ColdCaches {
  /** More than a core's L2 cache on most servers (0.5 to 2 MiB). */
  private readonly data = new Float64Array((4 * 1024 * 1024) / 8);
  private sum = 0;
  /** What the two clock reads around a chunk cost, in ms. */
  readonly timing: number;

  constructor() {
    let total = 0;
    const samples = 2000;
    for (let i = 0; i < samples; i++) {
      this.evict();
      const started = performance.now();
      total += performance.now() - started;
    }
    this.timing = total / samples;
  }

  /** Writes one word of each cache line of the buffer. */
  evict(): void {
    const data = this.data;
    let sum = 0;
    for (let i = 0; i < data.length; i += 8) sum += data[i]++;
    this.sum += sum;
  }
}
/** Cold chunks take this many times longer to measure (the eviction), so this many times fewer are measured. */
const COLD_SLOWER = 100;

/** pgbench's built-in scripts, as pgbench sends them with -M simple. */
const WORKLOADS: Record<string, Workload> = {
  'select-only': workload(statement((i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${draw(i).aid};`, 'SELECT 1', 'I', true)),
  tpcb: workload(
    statement(() => 'BEGIN;', 'BEGIN', 'T'),
    statement((i) => `UPDATE pgbench_accounts SET abalance = abalance + ${draw(i).delta} WHERE aid = ${draw(i).aid};`, 'UPDATE 1', 'T'),
    statement((i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${draw(i).aid};`, 'SELECT 1', 'T', true),
    statement((i) => `UPDATE pgbench_tellers SET tbalance = tbalance + ${draw(i).delta} WHERE tid = ${draw(i).tid};`, 'UPDATE 1', 'T'),
    statement((i) => `UPDATE pgbench_branches SET bbalance = bbalance + ${draw(i).delta} WHERE bid = ${draw(i).bid};`, 'UPDATE 1', 'T'),
    statement((i) => {
      const { tid, bid, aid, delta } = draw(i);
      return `INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (${tid}, ${bid}, ${aid}, ${delta}, CURRENT_TIMESTAMP);`;
    }, 'INSERT 0 1', 'T'),
    statement(() => 'END;', 'COMMIT', 'I'),
  ),
};

async function measure(setup: Setup, steps: Workload, transactions: number, cold: ColdCaches | null, dir: string): Promise<number> {
  const config = buildConfig({ listen: '127.0.0.1:0', ...setup.config }, {}, {});
  const trace = setup.traced ? ndjsonSink(openTraceWriter(path.join(dir, `${setup.name}.ndjson`))) : null;
  const app = await App.start({ config, target: parseUpstreamUrl('postgres://bench@127.0.0.1:9/bench'), log: pino({ level: 'silent' }), trace, tlsContext: null });
  try {
    const session: SessionInfo = { id: 'bench', user: 'bench', database: 'bench', applicationName: 'pgbench', clientAddress: '127.0.0.1', startedAt: Date.now(), backendPid: 1, replication: false };
    const tracker = new SessionTracker(session, app.trackerListener);
    tracker.start();
    const read = (chunk: Chunk) => {
      tracker.chunkStarted();
      for (const bytes of chunk.messages) {
        if (chunk.fromClient) tracker.onClientMessage(bytes[0], bytes, 0, bytes.length);
        else if (bytes[0] === Backend.DataRow) tracker.onDataRow();
        else tracker.onServerMessage(bytes[0], bytes, 0, bytes.length);
      }
      tracker.chunkEnded();
    };
    let best = Infinity;
    for (let round = 0; round <= ROUNDS; round++) {
      let ns: number;
      if (cold === null) {
        const started = process.hrtime.bigint();
        for (let i = 0; i < transactions; i++) for (const chunk of steps[i % VARIANTS]) read(chunk);
        ns = Number(process.hrtime.bigint() - started) / transactions;
      } else {
        // Each chunk is timed alone, after the caches were filled with other data, less what timing it costs.
        let total = 0;
        const coldTransactions = Math.ceil(transactions / COLD_SLOWER);
        for (let i = 0; i < coldTransactions; i++) {
          for (const chunk of steps[i % VARIANTS]) {
            cold.evict();
            const started = performance.now();
            read(chunk);
            total += performance.now() - started - cold.timing;
          }
        }
        ns = (total * 1e6) / coldTransactions;
      }
      // Round 0 warms up the code.
      if (round > 0) best = Math.min(best, ns);
      // Let the trace writer drain between rounds, as the event loop would.
      await new Promise((resolve) => setImmediate(resolve));
    }
    tracker.end(true);
    return best;
  } finally {
    await app.stop(100);
    await trace?.flush();
  }
}

// `node dist/bench/tracker-cost.js [--cold] [select-only|tpcb]`: with no workload named, both.
// Each measurement runs in a process of its own (`--measure SETUP`): the
// code one setup's listeners left compiled must not slow the next one.
const args = process.argv.slice(2);
const coldCaches = args.includes('--cold');
const measureIndex = args.indexOf('--measure');
const measured = measureIndex < 0 ? null : args[measureIndex + 1];
const chosen = args.filter((arg, i) => arg !== '--cold' && i !== measureIndex && i !== measureIndex + 1);
const unknown = chosen.filter((name) => !(name in WORKLOADS));
if (unknown.length > 0) {
  process.stderr.write(`unknown workload ${unknown.join(', ')}: choose from ${Object.keys(WORKLOADS).join(', ')} (and --cold)\n`);
  process.exit(2);
}
// A shell's OTEL_* variables would turn export on where a setup has it off.
for (const key of Object.keys(process.env)) if (key.startsWith('OTEL_')) delete process.env[key];

if (measured !== null) {
  // A child: one setup, one workload; prints ns per transaction.
  const setup = SETUPS.find((s) => s.name === measured);
  if (setup === undefined || chosen.length !== 1) throw new Error(`--measure wants a setup (${SETUPS.map((s) => s.name).join(', ')}) and one workload`);
  const steps = WORKLOADS[chosen[0]];
  const statements = statementsOf(steps);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-tracker-cost-'));
  try {
    const ns = await measure(setup, steps, Math.round(TRANSACTIONS / statements), coldCaches ? new ColdCaches() : null, dir);
    process.stdout.write(`${ns}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
} else {
  for (const workload of chosen.length > 0 ? chosen : Object.keys(WORKLOADS)) {
    const statements = statementsOf(WORKLOADS[workload]);
    const caches = coldCaches ? 'cold caches' : 'warm caches';
    process.stdout.write(`tracker cost of one ${workload} transaction (${statements} statements), ${caches}, fastest of ${ROUNDS} rounds (Node.js ${process.version})\n`);
    for (const setup of SETUPS) {
      const child = [fileURLToPath(import.meta.url), '--measure', setup.name, workload, ...(coldCaches ? ['--cold'] : [])];
      const ns = Number(execFileSync(process.execPath, child, { encoding: 'utf8' }).trim());
      const perStatement = statements > 1 ? `  (${(ns / statements).toFixed(0)} ns a statement)` : '';
      process.stdout.write(`  ${setup.name.padEnd(11)} ${ns.toFixed(0).padStart(5)} ns${perStatement}   ${setup.description}\n`);
    }
  }
}
