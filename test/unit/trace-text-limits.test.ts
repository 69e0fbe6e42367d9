/**
 * Length limits of trace records: SQL text, error messages and sqlcommenter
 * tags are cut at their configured length with a visible marker, so that
 * one large value a client sends is not copied whole into every record.
 */
import t from 'tap';
import { buildConfig, settingsFromEnv } from '../../src/config/load.js';
import { classifyStatement } from '../../src/sql/classify.js';
import { MAX_TAGS, TraceText, truncatedMark } from '../../src/trace/trace-text.js';
import type { RequestInfo } from '../../src/tracker/types.js';

const text = (sql: 'full' | 'redacted' | 'off', maxSqlLength = 100, maxTagLength = 64) => new TraceText({ sql, maxSqlLength, maxTagLength });

function request(tags: Record<string, string>): RequestInfo {
  return { id: '1.r1', traceId: null, route: tags.route ?? null, controller: tags.controller ?? null, action: null, application: null, framework: null, tags };
}

t.test('SQL text longer than max_sql_length is cut and marked, in full and redacted mode', async (t) => {
  const long = `SELECT '${'x'.repeat(500)}' AS a, 42 AS b`;
  const full = text('full').sql(long, classifyStatement(long)) as string;
  t.equal(full, long.slice(0, 100) + truncatedMark(long.length));
  t.match(full, /…\[truncated from 523 characters\]$/);
  const redacted = text('redacted').sql(long, classifyStatement(long)) as string;
  t.equal(redacted, `SELECT ?${truncatedMark(long.length)}`, 'a string cut open is blanked whole');
  t.equal(text('full').sql('SELECT 1'), 'SELECT 1', 'shorter texts are untouched');
  t.equal(text('full', 8).sql('SELECT 1'), 'SELECT 1', 'a text exactly at the limit is untouched');
  t.equal(text('off').sql(long), undefined);
  const password = `ALTER ROLE app PASSWORD '${'p'.repeat(200)}`;
  t.equal(text('full').sql(password, classifyStatement(password)), `ALTER ROLE app PASSWORD ?${truncatedMark(password.length)}`, 'a password cut open is still masked');
});

t.test('a cut never splits a surrogate pair', async (t) => {
  const emoji = '😀'.repeat(60); // 120 UTF-16 code units
  const cut = text('full', 101).sql(`SELECT '${emoji}'`) as string;
  const head = cut.slice(0, cut.indexOf('…'));
  t.equal(head.length, 100, 'cut one short of the limit, before the pair');
  t.doesNotThrow(() => encodeURIComponent(head), 'no lone surrogate');
});

t.test('error messages are capped like SQL text', async (t) => {
  const message = `syntax error at or near "${'y'.repeat(300)}`;
  t.equal(text('full').errorMessage(message), message.slice(0, 100) + truncatedMark(message.length));
  t.equal(text('redacted').errorMessage(message), `syntax error at or near "?"${truncatedMark(message.length)}`);
});

t.test('sqlcommenter keys and values longer than max_tag_length are cut and marked', async (t) => {
  const route = '/r/' + 'a'.repeat(1_000_000);
  const record: Record<string, unknown> = {};
  text('full').addRequest(record, request({ route, controller: 'shop' }));
  t.same(record, {
    'request.id': '1.r1',
    'http.route': route.slice(0, 64) + truncatedMark(route.length),
    controller: 'shop',
    sqlcommenter: { route: route.slice(0, 64) + truncatedMark(route.length), controller: 'shop' },
  });
  const longKey = 'k'.repeat(100);
  const keyed: Record<string, unknown> = {};
  text('full').addRequest(keyed, request({ [longKey]: 'v' }));
  t.same(keyed.sqlcommenter, { [longKey.slice(0, 64) + truncatedMark(100)]: 'v' });
  const tags = { route: '/ok', controller: 'c' };
  const plain: Record<string, unknown> = {};
  text('full').addRequest(plain, request(tags));
  t.equal(plain.sqlcommenter, tags, 'tags within the limits are written as they are, not copied');
});

t.test(`at most ${MAX_TAGS} tags are kept; a … entry counts the rest`, async (t) => {
  const many: Record<string, string> = {};
  for (let i = 0; i < 1000; i++) many[`k${i}`] = 'v';
  const record: Record<string, unknown> = {};
  text('full').addRequest(record, request(many));
  const kept = record.sqlcommenter as Record<string, string>;
  t.equal(Object.keys(kept).length, MAX_TAGS + 1);
  t.equal(kept.k0, 'v');
  t.equal(kept[`k${MAX_TAGS - 1}`], 'v');
  t.equal(kept['…'], `${1000 - MAX_TAGS} more tags`);
});

t.test('requestBytes is the same fields as JSON text, made once per request', async (t) => {
  const traceText = text('full');
  const r = request({ route: '/x'.repeat(100) + 'é' });
  const bytes = traceText.requestBytes(r);
  const fields: Record<string, unknown> = {};
  traceText.addRequest(fields, r);
  t.equal(Buffer.from(bytes).toString('utf8'), ',' + JSON.stringify(fields).slice(1, -1));
  t.equal(traceText.requestBytes(r), bytes);
});

t.test('trace.max_sql_length and trace.max_tag_length: defaults, TXPROXY_* variables, validation', async (t) => {
  const defaults = buildConfig({}, {}, {});
  t.same([defaults.trace.max_sql_length, defaults.trace.max_tag_length], [16384, 512]);
  const env = settingsFromEnv({ TXPROXY_TRACE_MAX_SQL_LENGTH: '2048', TXPROXY_TRACE_MAX_TAG_LENGTH: '128' });
  const fromEnv = buildConfig({}, env, {});
  t.same([fromEnv.trace.max_sql_length, fromEnv.trace.max_tag_length], [2048, 128]);
  t.throws(() => buildConfig({ trace: { max_tag_length: 10 } }, {}, {}), /trace\.max_tag_length.*at least 64/);
});
