/**
 * `pin` and `unpin` records (transaction pooling): one line each in the
 * transcript, where they came among their session's records, kept or
 * hidden by the filters like the session lines.
 */
import t from 'tap';
import { NO_FILTER } from '../../../src/trace-render/filter.js';
import { decodeLine } from '../../../src/trace-render/records.js';
import { colourStyle } from '../../../src/trace-render/style.js';
import { blocksOf, pin, render, session, statement, transaction } from './fixtures.js';

const titles = (text: string) => blocksOf(text).map((b) => b.title.replace(/ · 2026-\S+ \S+ UTC$/, ''));

t.test('decoded: session, backend and reasons; a record without its session is malformed', async (t) => {
  const decoded = decodeLine(JSON.stringify(pin('9', 'pin', 1234, ['listen', 'temp_table'])));
  t.match(decoded, { ok: true, event: { kind: 'pin', sessionId: '9', database: 'app', backendPid: 1234, reasons: ['listen', 'temp_table'] } });
  t.match(decodeLine('{"kind":"unpin","session.id":"9","reasons":["role"]}'), { ok: true, event: { kind: 'unpin', backendPid: null, reasons: ['role'] } });
  t.match(decodeLine('{"kind":"pin","session.id":"9","reasons":["listen",7,null,{"a":1}]}'), { ok: true, event: { reasons: ['listen'] } }, 'only string reasons');
  t.match(decodeLine('{"kind":"pin","session.id":"9","reasons":"listen"}'), { ok: true, event: { reasons: [] } });
  const bad = decodeLine('{"kind":"pin","pg.backend_pid":1234,"reasons":["listen"]}');
  t.same(bad, { ok: false, reason: 'pin record without a valid "session.id"' });
});

t.test('one line each, in their session, in the order written', async (t) => {
  const { text, problems } = render([
    session('7', 'start'),
    statement('7', '7.t1', 1, 'LISTEN jobs', { 'pg.command_tag': 'LISTEN' }),
    transaction('7', '7.t1'),
    pin('7', 'pin', 1234, ['listen']),
    statement('7', '7.t2', 2, 'CREATE TEMP TABLE scratch (id int)', { 'pg.command_tag': 'CREATE TABLE' }),
    transaction('7', '7.t2'),
    pin('7', 'pin', 1234, ['temp_table']),
    statement('7', '7.t3', 3, 'UNLISTEN *', { 'pg.command_tag': 'UNLISTEN' }),
    transaction('7', '7.t3'),
    pin('7', 'unpin', 1234, ['listen']),
    pin('7', 'unpin', 1234, ['temp_table']),
    session('7', 'end'),
  ]);
  t.same(problems, []);
  t.same(titles(text), [
    '── session 7 started · web@app · application shop · client 10.0.0.5 · pid 4000',
    '── tx 7.t1 · implicit (autocommit) · commit · 2.00 ms · 1 statement · 0 writes',
    '── pinned to backend 1234: listen · session 7',
    '── tx 7.t2 · implicit (autocommit) · commit · 2.00 ms · 1 statement · 0 writes',
    '── pinned to backend 1234: temp_table · session 7',
    '── tx 7.t3 · implicit (autocommit) · commit · 2.00 ms · 1 statement · 0 writes',
    '── unpinned from backend 1234: listen · session 7',
    '── unpinned from backend 1234: temp_table · session 7',
    '── session 7 ended · clean · after 12.0 ms',
  ]);
  const pinLine = blocksOf(text)[2];
  t.equal(pinLine.lines.length, 1, 'one line');
  t.match(pinLine.title, / · session 7 · 2026-01-02 03:04:05\.\d+ UTC$/, 'with its time, as the other lines');
});

t.test('several reasons at once; an unknown reason and a missing backend are shown as they are', async (t) => {
  const { text } = render([
    pin('3', 'pin', 55, ['listen', 'temp_table', 'advisory_lock']),
    { kind: 'pin', time: '2026-01-02T03:04:05.000Z', 'session.id': '3', reasons: ['from_a_newer_writer'] },
    { kind: 'unpin', time: '2026-01-02T03:04:05.000Z', 'session.id': '3', 'pg.backend_pid': 55, reasons: [] },
  ]);
  t.same(titles(text), [
    '── pinned to backend 55: listen, temp_table, advisory_lock · session 3',
    '── pinned to backend ?: from_a_newer_writer · session 3',
    '── unpinned from backend 55 · session 3',
  ]);
});

t.test('control characters in a reason or session id are shown escaped, never sent to the terminal', async (t) => {
  const { text } = render([{ kind: 'pin', time: '2026-01-02T03:04:05.000Z', 'session.id': 's\x1b[2J', 'pg.backend_pid': 1, reasons: ['listen\x07', 'x\u202ey', 'a\nb'] }]);
  t.equal(text, '── pinned to backend 1: listen\\x07, x\\u202ey, a\\nb · session s\\x1b[2J · 2026-01-02 03:04:05.000 UTC\n\n');
  const coloured = render([pin('1', 'pin', 1, ['listen\x1b]0;title\x07'])], NO_FILTER, colourStyle).text;
  // eslint-disable-next-line no-control-regex
  t.notMatch(coloured.replace(/\x1b\[[\d;]*m/g, ''), /[\x07\x1b]/, 'in colour too, only the style sequences are raw');
  t.match(coloured, /listen\\x1b\]0;title\\x07/);
});

t.test('a pin comes after the transaction that pinned, even one held for its closing statement', async (t) => {
  const { text } = render([
    statement('5', '5.t1', 1, 'BEGIN'),
    statement('5', '5.t1', 2, "SELECT pg_advisory_lock(1)", { 'pg.command_tag': 'SELECT 1' }),
    transaction('5', '5.t1', { implicit: false, statements: 3 }),
    // Another session's pin does not release it: the COMMIT record still belongs in its block.
    pin('6', 'pin', 2001, ['listen']),
    statement('5', '5.t1', 3, 'COMMIT'),
    pin('5', 'pin', 2000, ['advisory_lock']),
    statement('5', '5.t2', 4, 'SELECT 1', { 'pg.command_tag': 'SELECT 1' }),
    transaction('5', '5.t2'),
    // The held autocommit transaction is shown before its session's unpin.
    pin('5', 'unpin', 2000, ['advisory_lock']),
  ]);
  t.same(titles(text).map((x) => x.split(' · ')[0]), [
    '── pinned to backend 2001: listen',
    '── tx 5.t1',
    '── pinned to backend 2000: advisory_lock',
    '── tx 5.t2',
    '── unpinned from backend 2000: advisory_lock',
  ]);
  t.notMatch(text, /late record/);
  t.same(blocksOf(text)[1].statements.map((s) => s.sql), ['BEGIN', 'SELECT pg_advisory_lock(1)', 'COMMIT']);
});

t.test('filters: --session keeps its own pins; --route and --min-ms hide them like session lines', async (t) => {
  const records = [
    session('1', 'start'),
    pin('1', 'pin', 10, ['listen']),
    pin('2', 'pin', 20, ['role']),
    statement('1', '1.t1', 1, 'SELECT pg_sleep(1)', { 'pg.command_tag': 'SELECT 1', 'http.route': '/slow', duration_ms: 1000 }),
    transaction('1', '1.t1', { duration_ms: 1000, 'http.route': '/slow' }),
    pin('1', 'unpin', 10, ['listen']),
    pin('2', 'unpin', 20, ['role']),
  ];
  const bySession = titles(render(records, { sessionId: '2', route: null, minMs: null }).text);
  t.same(bySession, ['── pinned to backend 20: role · session 2', '── unpinned from backend 20: role · session 2']);
  const byRoute = titles(render(records, { sessionId: null, route: '/slow', minMs: null }).text);
  t.same(byRoute.map((x) => x.split(' · ')[0]), ['── tx 1.t1']);
  const slow = titles(render(records, { sessionId: '1', route: null, minMs: 500 }).text);
  t.same(slow.map((x) => x.split(' · ')[0]), ['── tx 1.t1']);
});
