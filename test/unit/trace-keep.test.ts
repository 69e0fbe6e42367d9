/**
 * Tail sampling (trace.keep): the decision table, and how the records of
 * a transaction are held, written and dropped together.
 */
import t from 'tap';
import { buildConfig } from '../../src/config/load.js';
import { keepRules, keeps, Signal, transactionSignals, type KeepConfig, type KeepRules } from '../../src/trace/keep-rules.js';
import { ScratchLine, type JsonBytes, type LineWriter } from '../../src/trace/json-bytes.js';
import { TailSampler } from '../../src/trace/tail-sampler.js';
import { TraceBus, type RecordEncoder, type TraceSink } from '../../src/trace/trace-sink.js';
import type { RequestInfo, SessionInfo, StatementRecord, TransactionRecord } from '../../src/tracker/types.js';

const ALL_ON: KeepConfig = {
  sample: 0,
  slower_than: 500,
  errors: true,
  deadlocks: true,
  lock_waits: true,
  policies: true,
  not_atomic: true,
  max_held: 1000,
};

function rules(overrides: Partial<KeepConfig> = {}): KeepRules {
  const r = keepRules({ ...ALL_ON, ...overrides });
  if (r === null) throw new Error('expected rules');
  return r;
}

function request(id = '1.r1'): RequestInfo {
  return { id, traceId: null, route: null, controller: null, action: null, application: null, framework: null, tags: null };
}

function tx(id: string, fields: Partial<TransactionRecord> = {}): TransactionRecord {
  return {
    id,
    sessionId: id.split('.')[0],
    startedAt: 0,
    startMono: 0,
    endedAt: 0,
    durationMs: 1,
    outcome: 'commit',
    implicit: true,
    statements: 1,
    writes: 0,
    savepointsCreated: 0,
    savepointsReleased: 0,
    savepointsRolledBack: 0,
    maxSavepointDepth: 0,
    idleInTransactionMs: 0,
    lockWaitMs: 0,
    firstError: null,
    failed: false,
    request: request(),
    statementLog: [],
    ...fields,
  };
}

function st(transactionId: string | null, seq: number, fields: Partial<StatementRecord> = {}): StatementRecord {
  return { transactionId, seq, text: '', error: null, lockWaitMs: 0, ...fields } as StatementRecord;
}

/** Records carry the text a test expects for them; the sampler asks for it only when it writes one. */
const lineOf = new WeakMap<object, string>();
let built = 0;
const TEXT: RecordEncoder = {
  statementLine: (_session, s) => (built++, lineOf.get(s)!),
  transactionLine: (_session, t) => (built++, lineOf.get(t)!),
  encodeStatement: (out, _session, s) => encodeLine(out, lineOf.get(s)!),
  encodeTransaction: (out, _session, t) => encodeLine(out, lineOf.get(t)!),
};

function encodeLine(out: LineWriter, line: string): void {
  built++;
  const w = out.beginLine(Buffer.byteLength(line));
  if (w === null) return;
  w.pos += Buffer.from(line).copy(w.buf, w.pos);
  out.endLine();
}
const info = (id: string) => ({ id }) as SessionInfo;

/** A sampler writing to an array, driven with a record and the line it stands for. */
function harness(r: KeepRules, draws: boolean[] = []) {
  const out: string[] = [];
  const random = () => (draws.shift() ?? false ? 0 : 0.999999);
  const real = new TailSampler(r, (line) => out.push(line), random);
  const sampler = {
    statement(sessionId: string, s: StatementRecord, line: string) {
      lineOf.set(s, line);
      real.statement(info(sessionId), s, TEXT);
    },
    transaction(sessionId: string, t: TransactionRecord, line: string) {
      lineOf.set(t, line);
      real.transaction(info(sessionId), t, TEXT);
    },
    record: (record: Record<string, unknown>, line: string) => real.record(record, line),
    sessionStarted: (id: string) => real.sessionStarted(id),
    sessionEnded: (id: string) => real.sessionEnded(id),
    counts: real.counts,
  };
  return { out, sampler };
}

const ERROR = { code: '23505', message: 'duplicate key', severity: 'ERROR' } as StatementRecord['error'];

t.test('keepRules: sample 1 keeps everything without any sampler at all', async (t) => {
  t.equal(keepRules({ ...ALL_ON, sample: 1 }), null);
  t.equal(keepRules(buildConfig({}, {}, {}).trace.keep), null, 'the default configuration');
  const r = rules({ sample: 0.5, slower_than: null, policies: false });
  t.equal(r.sample, 0.5);
  t.equal(r.slowerThanMs, Infinity);
  t.equal(r.keepMask & Signal.Policy, 0);
  t.equal(r.keepMask & Signal.Slow, 0);
});

t.test('the decision table: each reason keeps only when its rule is on; the draw keeps anything', async (t) => {
  const cases: [string, number, keyof KeepConfig][] = [
    ['error', Signal.Error, 'errors'],
    ['deadlock', Signal.Deadlock, 'deadlocks'],
    ['lock wait', Signal.LockWait, 'lock_waits'],
    ['policy', Signal.Policy, 'policies'],
    ['not atomic', Signal.NotAtomic, 'not_atomic'],
  ];
  for (const [name, signal, key] of cases) {
    t.equal(keeps(rules(), signal, false), true, `${name}: kept with ${key} on`);
    t.equal(keeps(rules({ [key]: false }), signal, false), false, `${name}: dropped with ${key} off`);
    t.equal(keeps(rules({ [key]: false }), signal, true), true, `${name}: kept when sampled with ${key} off`);
  }
  t.equal(keeps(rules(), Signal.Slow, false), true, 'slow: kept with slower_than set');
  t.equal(keeps(rules({ slower_than: null }), Signal.Slow, false), false, 'slow: dropped with slower_than off');
  t.equal(keeps(rules(), 0, false), false, 'nothing shown, not sampled: dropped');
  t.equal(keeps(rules(), 0, true), true, 'nothing shown, sampled: kept');
});

t.test('transactionSignals: what a transaction record tells by itself', async (t) => {
  const r = rules({ slower_than: 500 });
  t.equal(transactionSignals(r, tx('1.t1')), 0, 'an ordinary commit');
  t.equal(transactionSignals(r, tx('1.t1', { outcome: 'failed' })), Signal.Error);
  t.equal(transactionSignals(r, tx('1.t1', { outcome: 'disconnect' })), Signal.Error);
  t.equal(transactionSignals(r, tx('1.t1', { outcome: 'rollback' })), 0, 'a rollback the client asked for');
  t.equal(transactionSignals(r, tx('1.t1', { firstError: { code: '23505', message: 'x' } })), Signal.Error, 'an error a savepoint recovered from');
  t.equal(transactionSignals(r, tx('1.t1', { lockWaitMs: 12 })), Signal.LockWait);
  t.equal(transactionSignals(r, tx('1.t1', { durationMs: 499.9 })), 0);
  t.equal(transactionSignals(r, tx('1.t1', { durationMs: 500 })), Signal.Slow);
});

t.test('held until the end, then written or dropped together', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.sessionStarted('1');
  sampler.statement('1', st('1.t1', 1), 's1');
  sampler.statement('1', st('1.t1', 2), 's2');
  t.same(out, [], 'nothing written while the transaction runs');
  sampler.transaction('1', tx('1.t1'), '{"t":1}');
  t.same(out, [], 'an ordinary transaction is dropped');
  sampler.statement('1', st('1.t2', 3), 's3');
  sampler.transaction('1', tx('1.t2', { durationMs: 800 }), '{"t":2}');
  t.same(out, ['s3', '{"t":2}'], 'a slow one is written with its statements');
  t.same(sampler.counts, { kept: 1, dropped: 1 });
});

t.test('a statement error writes the transaction at once, and the rest as it comes', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.statement('1', st('1.t1', 1), 'BEGIN');
  sampler.statement('1', st('1.t1', 2, { error: ERROR }), 'INSERT');
  t.same(out, ['BEGIN', 'INSERT']);
  sampler.statement('1', st('1.t1', 3), 'ROLLBACK');
  sampler.transaction('1', tx('1.t1', { outcome: 'failed' }), '{"t":1}');
  t.same(out, ['BEGIN', 'INSERT', 'ROLLBACK', '{"t":1}']);
});

t.test('a transaction the draw picks is written as it runs, nothing held', async (t) => {
  const { out, sampler } = harness(rules({ sample: 0.5 }), [true, false]);
  sampler.statement('1', st('1.t1', 1), 'a');
  t.same(out, ['a']);
  sampler.transaction('1', tx('1.t1'), '{"t":1}');
  sampler.statement('1', st('1.t2', 2), 'b');
  sampler.transaction('1', tx('1.t2'), '{"t":2}');
  t.same(out, ['a', '{"t":1}'], 'the next one, not drawn, is dropped');
});

t.test('lock_wait, deadlock and policy records follow their transaction and keep it', async (t) => {
  for (const kind of ['lock_wait', 'deadlock', 'policy']) {
    const { out, sampler } = harness(rules());
    sampler.statement('1', st('1.t1', 1), 'BEGIN');
    sampler.record({ kind, 'session.id': '1', 'transaction.id': '1.t1', decision: 'refused' }, kind);
    sampler.statement('1', st('1.t1', 2), 'COMMIT');
    sampler.transaction('1', tx('1.t1'), '{"t":1}');
    t.same(out, ['BEGIN', kind, 'COMMIT', '{"t":1}'], kind);
  }
  // With the rule off, the record goes with its dropped transaction.
  const { out, sampler } = harness(rules({ policies: false }));
  sampler.statement('1', st('1.t1', 1), 'UPDATE');
  sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t1', decision: 'refused' }, 'policy');
  sampler.transaction('1', tx('1.t1'), '{"t":1}');
  t.same(out, [], 'policies: false');
});

t.test('routine policy records (a request transaction wrapped, committed) do not keep a transaction', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.sessionStarted('1');
  sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t1', decision: 'wrapped' }, 'wrapped');
  sampler.statement('1', st('1.t1', 1), 'SAVEPOINT');
  sampler.transaction('1', tx('1.t1'), '{"t":1}');
  sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t1', decision: 'committed' }, 'committed');
  t.same(out, [], 'dropped with its transaction');
  for (const decision of ['refused', 'limit', 'warned']) {
    const h = harness(rules());
    h.sampler.statement('1', st('1.t1', 1), 'INSERT');
    h.sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t1', decision }, decision);
    t.same(h.out, ['INSERT', decision], `${decision} keeps it`);
  }
});

t.test('a deadlock keeps the other processes of the cycle that are still in their transaction', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.statement('2', st('2.t1', 1), 'UPDATE b');
  sampler.statement('1', st('1.t1', 1), 'UPDATE a');
  const processes = [
    { 'pg.backend_pid': 11, 'session.id': '1', 'transaction.id': '1.t1', victim: true },
    { 'pg.backend_pid': 12, 'session.id': '2', 'transaction.id': '2.t1', victim: false },
  ];
  sampler.record({ kind: 'deadlock', 'session.id': '1', 'transaction.id': '1.t1', processes }, 'deadlock');
  t.same(out, ['UPDATE a', 'UPDATE b', 'deadlock']);
  sampler.statement('2', st('2.t1', 2), 'COMMIT');
  sampler.transaction('2', tx('2.t1'), '{"t":"2.1"}');
  t.same(out.slice(3), ['COMMIT', '{"t":"2.1"}'], 'the surviving process, though it committed');
});

t.test('a policy decision that names no transaction keeps the session\'s next one', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.sessionStarted('1');
  sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': null, decision: 'warned' }, 'policy');
  sampler.statement('1', st('1.t1', 1), 'INSERT');
  sampler.transaction('1', tx('1.t1'), '{"t":1}');
  sampler.statement('1', st('1.t2', 2), 'SELECT');
  sampler.transaction('1', tx('1.t2'), '{"t":2}');
  t.same(out, ['policy', 'INSERT', '{"t":1}']);
});

t.test('a policy warning after the transaction record brings the dropped transaction back', async (t) => {
  const { out, sampler } = harness(rules({ not_atomic: false }));
  sampler.statement('1', st('1.t1', 1), 'INSERT');
  sampler.transaction('1', tx('1.t1', { writes: 1 }), '{"t":1}');
  t.same(out, []);
  sampler.record({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t1', decision: 'warned' }, 'warned');
  t.same(out, ['INSERT', '{"t":1}', 'warned']);
  t.same(sampler.counts, { kept: 1, dropped: 0 });
});

t.test('not atomic: the second autocommit write of a request keeps both, first one first', async (t) => {
  const { out, sampler } = harness(rules());
  const r1 = request('1.r1');
  sampler.statement('1', st('1.t1', 1), 'INSERT a');
  sampler.transaction('1', tx('1.t1', { writes: 1, request: r1 }), '{"t":1}');
  sampler.statement('1', st('1.t2', 2), 'SELECT');
  sampler.transaction('1', tx('1.t2', { request: r1 }), '{"t":2}');
  sampler.statement('1', st('1.t3', 3), 'INSERT b');
  t.same(out, []);
  sampler.transaction('1', tx('1.t3', { writes: 1, request: r1 }), '{"t":3}');
  t.same(out, ['INSERT a', '{"t":1}', 'INSERT b', '{"t":3}'], 'the read in between stays dropped');
  // A new request starts counting again.
  const r2 = request('1.r2');
  sampler.statement('1', st('1.t4', 4), 'INSERT c');
  sampler.transaction('1', tx('1.t4', { writes: 1, request: r2 }), '{"t":4}');
  t.equal(out.length, 4);
  // Rolled back, or in a block: not an autocommit write.
  sampler.statement('1', st('1.t5', 5), 'INSERT d');
  sampler.transaction('1', tx('1.t5', { writes: 1, request: r2, implicit: false }), '{"t":5}');
  t.equal(out.length, 4);
  sampler.statement('1', st('1.t6', 6), 'INSERT e');
  sampler.transaction('1', tx('1.t6', { writes: 1, request: r2 }), '{"t":6}');
  t.same(out.slice(4), ['INSERT c', '{"t":4}', 'INSERT e', '{"t":6}']);
});

t.test('not_atomic off: separate autocommit writes are sampled like the rest', async (t) => {
  const { out, sampler } = harness(rules({ not_atomic: false }));
  for (let i = 1; i <= 3; i++) {
    sampler.statement('1', st(`1.t${i}`, i), `INSERT ${i}`);
    sampler.transaction('1', tx(`1.t${i}`, { writes: 1 }), `{"t":${i}}`);
  }
  t.same(out, []);
});

t.test('memory is bounded: at max_held a transaction is decided early', async (t) => {
  const { out, sampler } = harness(rules({ max_held: 16 }));
  for (let i = 1; i <= 100; i++) sampler.statement('1', st('1.t1', i), `s${i}`);
  t.same(out, [], 'dropped early: nothing written');
  sampler.statement('1', st('1.t1', 101, { error: ERROR }), 's101');
  t.same(out, ['s101'], 'a statement that is a reason itself is written');
  sampler.statement('1', st('1.t1', 102), 's102');
  t.same(out, ['s101', 's102'], 'and, kept after all, every record after it');
  sampler.transaction('1', tx('1.t1', { outcome: 'failed' }), '{"t":1}');
  t.same(out, ['s101', 's102', '{"t":1,"statements_dropped":100}'], 'the transaction record says how many statements were left out');

  // Kept early when a reason came before the cap: written through from then on.
  const kept = harness(rules({ max_held: 16 }));
  kept.sampler.sessionStarted('2');
  kept.sampler.record({ kind: 'lock_wait', 'session.id': '2', 'transaction.id': '2.t1' }, 'wait');
  t.same(kept.out, ['wait']);
  for (let i = 1; i <= 20; i++) kept.sampler.statement('2', st('2.t1', i), `s${i}`);
  t.equal(kept.out.length, 21);

  // Dropped early and ending without a reason: nothing at all.
  const dropped = harness(rules({ max_held: 16 }));
  for (let i = 1; i <= 40; i++) dropped.sampler.statement('3', st('3.t1', i), `s${i}`);
  dropped.sampler.transaction('3', tx('3.t1'), '{"t":1}');
  t.same(dropped.out, []);
  t.same(dropped.sampler.counts, { kept: 0, dropped: 1 });
});

t.test('records of no transaction are written at once; a session end decides what is still open', async (t) => {
  const { out, sampler } = harness(rules());
  sampler.sessionStarted('1');
  sampler.record({ kind: 'session', event: 'start', 'session.id': '1' }, 'start');
  sampler.statement('1', st(null, 1), 'COMMIT (none open)');
  sampler.record({ kind: 'dry_run', 'session.id': '1' }, 'dry_run');
  t.same(out, ['start', 'COMMIT (none open)', 'dry_run']);
  sampler.statement('1', st('1.t1', 2, { lockWaitMs: 3 }), 'UPDATE');
  sampler.statement('1', st('1.t2', 3), 'never ended');
  sampler.sessionEnded('1');
  t.same(out.slice(3), ['UPDATE'], 'a statement with lock wait is kept; one never ended without a reason is dropped');
});

t.test('TraceBus: with sample 1 records go straight to the sinks; with rules through the sampler', async (t) => {
  const lines: string[] = [];
  const bus = new TraceBus();
  bus.attach({ writeLine: (line) => lines.push(line), flush: async () => undefined });
  bus.keep(null);
  const a = st('1.t1', 1);
  lineOf.set(a, 'a');
  bus.writeStatement(info('1'), a, TEXT);
  t.same(lines, ['a']);
  t.equal(bus.sampled, null);
  bus.keep(rules());
  bus.sessionStarted('1');
  const b = st('1.t2', 2);
  lineOf.set(b, 'b');
  bus.writeStatement(info('1'), b, TEXT);
  bus.write({ kind: 'policy', 'session.id': '1', 'transaction.id': '1.t2', decision: 'refused' });
  t.same(lines.slice(1), ['b', '{"kind":"policy","session.id":"1","transaction.id":"1.t2","decision":"refused"}']);
  const end = tx('1.t2');
  lineOf.set(end, '{"t":2}');
  bus.writeTransaction(info('1'), end, TEXT);
  t.same(bus.sampled, { kept: 1, dropped: 0 });
});

/** A sink that takes lines as bytes (as the trace file does), and as strings. */
class ByteSink implements TraceSink, LineWriter {
  readonly encoded: string[] = [];
  readonly written: string[] = [];
  private readonly scratch = new ScratchLine();
  readonly lines = this;
  beginLine(maxBytes: number): JsonBytes {
    return this.scratch.beginLine(maxBytes);
  }
  endLine(): void {
    this.encoded.push(this.scratch.text());
  }
  writeLine(line: string): void {
    this.written.push(line);
  }
  async flush(): Promise<void> {}
}

t.test('TraceBus: the one transcript sink, when it takes bytes, gets statement and transaction records encoded into it; with another, both get strings', async (t) => {
  const bus = new TraceBus();
  const file = new ByteSink();
  const detach = bus.attach(file);
  const events: string[] = [];
  bus.attach({ writeLine: (line) => events.push(line), flush: async () => undefined, wantsTranscript: false });
  const a = st('1.t1', 1);
  lineOf.set(a, '{"a":"é"}');
  const end = tx('1.t1');
  lineOf.set(end, '{"t":1}');
  bus.writeStatement(info('1'), a, TEXT);
  bus.writeTransaction(info('1'), end, TEXT);
  bus.write({ kind: 'policy' });
  t.same(file.encoded, ['{"a":"é"}', '{"t":1}']);
  t.same(file.written, ['{"kind":"policy"}'], 'other records come as strings');
  t.same(events, ['{"kind":"policy"}'], 'a sink that wants no transcript gets the other records only');
  const other: string[] = [];
  const detachOther = bus.attach({ writeLine: (line) => other.push(line), flush: async () => undefined });
  bus.writeStatement(info('1'), a, TEXT);
  t.same(other, ['{"a":"é"}']);
  t.same(file.written.slice(1), ['{"a":"é"}']);
  t.equal(file.encoded.length, 2);
  detachOther();
  bus.writeTransaction(info('1'), end, TEXT);
  t.same(file.encoded.slice(2), ['{"t":1}'], 'alone again, it gets bytes again');
  detach();
  bus.writeTransaction(info('1'), end, TEXT);
  t.equal(file.encoded.length + file.written.length, 5, 'detached, it gets nothing');
});

t.test('the text of a dropped transaction\'s records is never built', async (t) => {
  const { out, sampler } = harness(rules());
  const before = built;
  for (let i = 1; i <= 50; i++) {
    sampler.statement('1', st(`1.t${i}`, i), `s${i}`);
    sampler.transaction('1', tx(`1.t${i}`), `{"t":${i}}`);
  }
  t.same(out, []);
  t.equal(built, before);
  sampler.statement('1', st('1.t51', 51, { error: ERROR }), 's51');
  t.equal(built, before + 1, 'built once kept');
});

t.test('a statement with huge SQL text is held as its cut trace line, not as the text', async (t) => {
  const { out, sampler } = harness(rules());
  const before = built;
  sampler.statement('1', st('1.t1', 1, { text: 'x'.repeat(20_000) }), 'huge, cut');
  t.equal(built, before + 1, 'its line is built at once');
  sampler.statement('1', st('1.t1', 2, { text: 'SELECT 1' }), 'small');
  t.equal(built, before + 1, 'a small one is not');
  sampler.transaction('1', tx('1.t1', { outcome: 'failed' }), '{"t":1}');
  t.same(out, ['huge, cut', 'small', '{"t":1}']);
});

t.test('many transactions on one session: exactly the kept ones, whole and in order (objects are reused)', async (t) => {
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const draws: boolean[] = [];
  const { out, sampler } = harness(rules({ not_atomic: false, sample: 0.2, max_held: 1000 }), draws);
  const expected: string[] = [];
  for (let n = 1; n <= 500; n++) {
    const id = `1.t${n}`;
    const sampled = rand() < 0.2;
    draws.push(sampled);
    const lines: string[] = [];
    let reason = false;
    const count = 1 + Math.floor(rand() * 5);
    for (let i = 0; i < count; i++) {
      const error = rand() < 0.05 ? ERROR : null;
      const lockWaitMs = rand() < 0.05 ? 3 : 0;
      reason ||= error !== null || lockWaitMs > 0;
      const line = `${id}/s${i}`;
      lines.push(line);
      sampler.statement('1', st(id, i, { error, lockWaitMs }), line);
    }
    const slow = rand() < 0.05;
    reason ||= slow;
    const txLine = `{"t":"${id}"}`;
    lines.push(txLine);
    sampler.transaction('1', tx(id, { durationMs: slow ? 900 : 1 }), txLine);
    if (sampled || reason) expected.push(...lines);
  }
  t.same(out, expected);
  t.equal(sampler.counts.kept + sampler.counts.dropped, 500);
});
