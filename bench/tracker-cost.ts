/**
 * What txproxy's own bookkeeping costs per transaction, without sockets:
 * a session tracker fed pgbench's select-only transaction (a Query, then
 * RowDescription, DataRow, CommandComplete and ReadyForQuery) over and over,
 * with the tracker listeners an App builds for each configuration: the
 * trace writer, tail sampling, metrics, OpenTelemetry spans, the lock
 * monitor and the policies.
 *
 *   npm run build && node dist/bench/tracker-cost.js
 *
 * It needs no PostgreSQL: no session registers with the App, so its lock
 * monitor never queries one, and pgbench's statements name no parent span,
 * so nothing is exported. The figure is the fastest of 7 rounds, in ns per
 * transaction, on one core of whatever else the machine is doing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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

const TRANSACTIONS = 300_000;
const ROUNDS = 7;

// pgbench's select-only transaction, as the client and the server send it.
const QUERIES = Array.from({ length: 1000 }, (_, i) => serialize.query(`SELECT abalance FROM pgbench_accounts WHERE aid = ${i * 97 + 1};`));
/** A RowDescription of no field: the tracker reads only its type. */
const ROW_DESCRIPTION = Buffer.from([Backend.RowDescription, 0, 0, 0, 6, 0, 0]);
const COMMAND_COMPLETE = commandComplete('SELECT 1');
const READY = readyForQuery('I');

async function measure(setup: Setup, dir: string): Promise<number> {
  const config = buildConfig({ listen: '127.0.0.1:0', ...setup.config }, {}, {});
  const trace = setup.traced ? ndjsonSink(openTraceWriter(path.join(dir, `${setup.name}.ndjson`))) : null;
  const app = await App.start({ config, target: parseUpstreamUrl('postgres://bench@127.0.0.1:9/bench'), log: pino({ level: 'silent' }), trace, tlsContext: null });
  try {
    const session: SessionInfo = { id: 'bench', user: 'bench', database: 'bench', applicationName: 'pgbench', clientAddress: '127.0.0.1', startedAt: Date.now(), backendPid: 1, replication: false };
    const tracker = new SessionTracker(session, app.trackerListener);
    tracker.start();
    // Two chunks, as the sockets deliver them: the client's Query, then the server's answer.
    const transaction = (i: number) => {
      const query = QUERIES[i % QUERIES.length];
      tracker.chunkStarted();
      tracker.onClientMessage(query[0], query, 0, query.length);
      tracker.chunkEnded();
      tracker.chunkStarted();
      tracker.onServerMessage(ROW_DESCRIPTION[0], ROW_DESCRIPTION, 0, ROW_DESCRIPTION.length);
      tracker.onDataRow();
      tracker.onServerMessage(COMMAND_COMPLETE[0], COMMAND_COMPLETE, 0, COMMAND_COMPLETE.length);
      tracker.onServerMessage(READY[0], READY, 0, READY.length);
      tracker.chunkEnded();
    };
    let best = Infinity;
    for (let round = 0; round <= ROUNDS; round++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < TRANSACTIONS; i++) transaction(i);
      const ns = Number(process.hrtime.bigint() - started) / TRANSACTIONS;
      // Round 0 warms up the code and the caches.
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

const dir = mkdtempSync(path.join(os.tmpdir(), 'txproxy-tracker-cost-'));
try {
  // A shell's OTEL_* variables would turn export on where a setup has it off.
  for (const key of Object.keys(process.env)) if (key.startsWith('OTEL_')) delete process.env[key];
  process.stdout.write(`tracker cost of one select-only transaction, fastest of ${ROUNDS} rounds × ${TRANSACTIONS} (Node.js ${process.version})\n`);
  for (const setup of SETUPS) {
    const ns = await measure(setup, dir);
    process.stdout.write(`  ${setup.name.padEnd(11)} ${ns.toFixed(0).padStart(5)} ns   ${setup.description}\n`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
