/**
 * Control characters in trace records never reach the terminal: a client
 * that puts ESC sequences, BEL, C1 controls or bidi overrides into its SQL,
 * application_name, sqlcommenter tags or error messages must not be able to
 * rewrite the screen of whoever reads the transcript. Every field of every
 * kind is tried, in plain and in coloured output.
 */
import t from 'tap';
import { printable, printableSql } from '../../../src/trace-render/printable.js';
import { colourStyle, plainStyle } from '../../../src/trace-render/style.js';
import { render, session, statement, transaction } from './fixtures.js';

/** Set the window title, clear the screen, a C1 CSI, a right-to-left override, a bell. */
const EVIL = '\x1b]0;pwned\x07\x1b[2J\u009b31m\u202eevil\x1b[0m\x08';
const SHOWN = '\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\u202eevil\\x1b[0m\\x08';

/** Anything a terminal would act on, other than the line breaks between output lines. */
const UNSAFE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

const evil = (name: string) => `${name}:${EVIL}`;
const shown = (name: string) => `${name}:${SHOWN}`;

/** Records of every kind with a hostile value in each string field the transcript may show. */
function hostileRecords(): Record<string, unknown>[] {
  const s = evil('sid');
  const tx = `${s}.t1`;
  return [
    {
      ...session(s, 'start'),
      'db.user': evil('user'),
      'db.namespace': evil('db'),
      'application.name': evil('app'),
      'client.address': evil('addr'),
      time: evil('time'),
    },
    statement(s, tx, 1, `BEGIN -- ${evil('begin')}`, { 'db.operation.name': 'BEGIN', 'request.id': evil('request'), 'http.route': evil('route') }),
    statement(s, tx, 2, `SELECT '${evil('sql')}'`, {
      'db.response.status_code': evil('sqlstate'),
      'error.message': evil('error'),
      'pg.command_tag': null,
      'request.id': evil('request'),
    }),
    {
      kind: 'lock_wait',
      time: evil('lwtime'),
      duration_ms: 1200,
      'session.id': s,
      'transaction.id': tx,
      'statement.seq': 2,
      'lock.type': evil('locktype'),
      'lock.mode': evil('lockmode'),
      'lock.relation': evil('relation'),
      blocked_by: [
        { 'pg.backend_pid': 1, 'session.id': evil('blocker'), 'transaction.id': evil('blockertx'), 'http.route': evil('blockerroute'), statements: [{ seq: 1, text: evil('blockersql') }] },
        { 'pg.backend_pid': 2, 'session.id': null, 'application.name': evil('psql'), state: evil('state'), query: evil('outsidesql') },
      ],
    },
    {
      kind: 'deadlock',
      time: evil('dltime'),
      'session.id': s,
      'transaction.id': tx,
      'pg.backend_pid': 3,
      processes: [{ 'pg.backend_pid': 3, waits_for: evil('waitsfor'), 'session.id': evil('dlsession'), 'transaction.id': evil('dltx'), 'http.route': evil('dlroute'), last_statement: evil('dlsql'), victim: true }],
    },
    {
      kind: 'policy',
      time: evil('ptime'),
      'session.id': s,
      'transaction.id': tx,
      rule: evil('rule'),
      mode: evil('mode'),
      action: evil('action'),
      decision: evil('decision'),
      sqlstate: evil('psqlstate'),
      message: evil('pmessage'),
      'db.query.text': evil('psql'),
    },
    transaction(s, tx, { outcome: evil('outcome'), first_error: { code: evil('code'), message: evil('firsterror') }, 'http.route': evil('route'), 'db.namespace': evil('db'), statements: 2 }),
    // Outside any transaction: the standalone forms of a statement and a policy decision.
    statement(s, null, 3, `COMMIT /* ${evil('commit')} */`, { 'db.operation.name': 'COMMIT', time: evil('stime') }),
    { kind: 'policy', time: evil('p2time'), 'session.id': s, 'transaction.id': null, rule: 'r', decision: 'refused', message: evil('p2message'), 'db.query.text': evil('p2sql'), 'request.id': evil('p2request') },
    { kind: 'dry_run', time: evil('drtime'), 'session.id': s, 'request.id': evil('drrequest'), 'http.route': evil('drroute'), changes: [{ command: evil('drcommand'), rows: 1, statement: evil('drsql') }], rolled_back: true },
    { ...session(s, 'end'), time: evil('endtime') },
  ];
}

const FIELDS_SHOWN = [
  'sid', 'user', 'db', 'app', 'addr', 'time', 'begin', 'request', 'route', 'sql', 'sqlstate', 'error',
  'locktype', 'lockmode', 'relation', 'blocker', 'blockertx', 'blockerroute', 'blockersql', 'psql', 'state', 'outsidesql',
  'waitsfor', 'dlsession', 'dltx', 'dlroute', 'dlsql', 'rule', 'mode', 'action', 'decision', 'psqlstate', 'pmessage',
  'outcome', 'commit', 'stime', 'p2time', 'p2message', 'p2sql', 'p2request', 'drtime', 'drrequest', 'drroute', 'drcommand', 'drsql', 'endtime',
];

t.test('no control character of any field reaches the output; each shows as a visible escape', async (t) => {
  const { text, problems } = render(hostileRecords());
  t.same(problems, []);
  const unsafe = text.split('\n').filter((line) => UNSAFE.test(line));
  t.same(unsafe, [], 'no line holds a control character');
  for (const field of FIELDS_SHOWN) t.ok(text.includes(shown(field)), `${field} shown escaped`);
});

t.test('coloured output: the only escape sequences are the transcript’s own colours', async (t) => {
  const records = hostileRecords();
  const { text } = render(records, undefined, colourStyle);
  const withoutColours = text.replace(/\x1b\[[\d;]*m/g, '');
  t.same(withoutColours.split('\n').filter((line) => UNSAFE.test(line)), [], 'nothing else');
  t.equal(withoutColours, render(records, undefined, plainStyle).text, 'the plain transcript plus colours');
  for (const field of ['sid', 'sql', 'error', 'route', 'app']) t.ok(withoutColours.includes(shown(field)), `${field} shown escaped`);
});

t.test('multi-line SQL is shown on one line, each run of whitespace one space; other line breaks are escaped', async (t) => {
  const { text } = render([
    statement('1', '1.t1', 1, 'SELECT a,\r\n       b\n\tFROM t\n WHERE x = 1', { 'db.response.status_code': '22000', 'error.message': 'line one\nline two', 'pg.command_tag': null }),
    transaction('1', '1.t1', { outcome: 'failed', 'http.route': '/a\n── tx forged' }),
  ]);
  t.match(text, /SELECT a, b FROM t WHERE x = 1\n/);
  t.match(text, /ERROR 22000: line one\\nline two\n/, 'an error message keeps to its line');
  t.notMatch(text, /^── tx forged/m, 'a line break in a tag cannot forge a transcript line');
});

t.test('a malformed line quoting control characters is reported escaped', async (t) => {
  const { problems } = render(['{"kind":\x1b[2J"statement"}']);
  t.equal(problems.length, 1);
  t.notMatch(problems[0], UNSAFE);
  t.match(problems[0], /\\x1b/);
});

t.test('printable and printableSql', async (t) => {
  t.equal(printable('plain text, unchanged: é € 😀'), 'plain text, unchanged: é € 😀');
  t.equal(printable('a\tb\nc\rd\x00e\x7ff\u0085g\u2028h\u2066i'), 'a\\tb\\nc\\rd\\x00e\\x7ff\\x85g\\u2028h\\u2066i');
  t.equal(printableSql('SELECT 1\n\tFROM t\r\n'), 'SELECT 1\n\tFROM t\r\n', 'SQL keeps its tabs and line breaks');
  t.equal(printableSql('SELECT \x1b[2J\x0b\x0c'), 'SELECT \\x1b[2J\\x0b\\x0c');
  t.equal(printable('back\\slash'), 'back\\slash', 'backslashes as they are');
});
