import t from 'tap';
import { LineSplitter } from '../../../src/trace-render/line-splitter.js';
import { decodeLine } from '../../../src/trace-render/records.js';
import { SseDecoder } from '../../../src/trace-render/sse-decoder.js';

/** Feeds `text` split at `at` (two chunks). */
function splitAt(text: string, at: number): string[] {
  return [text.slice(0, at), text.slice(at)];
}

t.test('LineSplitter: the same numbered lines whatever the chunk boundaries', async (t) => {
  const text = '{"a":1}\r\n\n{"b":2}\nlast-without-newline';
  const expected = [
    ['{"a":1}', 1],
    ['', 2],
    ['{"b":2}', 3],
    ['last-without-newline', 4],
  ];
  for (let at = 0; at <= text.length; at++) {
    const lines: [string, number][] = [];
    const splitter = new LineSplitter((line, n) => lines.push([line, n]));
    for (const chunk of splitAt(text, at)) splitter.push(chunk);
    splitter.end();
    t.same(lines, expected, `split at ${at}`);
  }
  const one: [string, number][] = [];
  const bytewise = new LineSplitter((line, n) => one.push([line, n]));
  for (const ch of text) bytewise.push(ch);
  bytewise.end();
  t.same(one, expected, 'one character per chunk');
});

t.test('SseDecoder: data of each event, comments and other fields ignored, any line ending, any split', async (t) => {
  const stream =
    '\ufeff: keepalive\n\n' +
    'data: {"kind":"x","n":1}\n\n' +
    'data:{"n":2}\r\n\r\n' +
    'event: ignored\nid: 7\ndata: first\ndata: second\r\r' +
    'retry: 2500\n' +
    'data\n\n' +
    ': keepalive\n\n' +
    'data: {"n":3}\n\n' +
    'data: never dispatched';
  const expectedData = ['{"kind":"x","n":1}', '{"n":2}', 'first\nsecond', '', '{"n":3}'];
  for (let at = 0; at <= stream.length; at++) {
    const data: string[] = [];
    const retries: number[] = [];
    const decoder = new SseDecoder({ onData: (d) => data.push(d), onRetry: (ms) => retries.push(ms) });
    for (const chunk of splitAt(stream, at)) decoder.push(chunk);
    // "data" alone is an empty data line: an event with empty data.
    t.same(data, expectedData, `split at ${at}`);
    t.same(retries, [2500]);
  }
});

t.test('SseDecoder: reset drops a half-received event (the stream was cut)', async (t) => {
  const data: string[] = [];
  const decoder = new SseDecoder({ onData: (d) => data.push(d) });
  decoder.push('data: {"cut":');
  decoder.reset();
  decoder.push('data: {"whole":1}\n\n');
  t.same(data, ['{"whole":1}']);
});

t.test('decodeLine: malformed input is reported with a reason, never thrown', async (t) => {
  const cases: [string, RegExp][] = [
    ['{"kind":"statement"', /^not valid JSON/],
    ['[1,2]', /^not a JSON object$/],
    ['42', /^not a JSON object$/],
    ['null', /^not a JSON object$/],
    ['{"time":"2026-01-01T00:00:00Z"}', /^no "kind" field$/],
    ['{"kind":"statement","session.id":"1","transaction.id":"1.t1"}', /^statement record without a valid "statement.seq"$/],
    ['{"kind":"statement","session.id":"1","statement.seq":1,"transaction.id":5}', /^statement record with a "transaction.id" that is not a string$/],
    ['{"kind":"transaction","session.id":"1"}', /^transaction record without a valid "transaction.id"$/],
    ['{"kind":"session","session.id":"1","event":"pause"}', /^session record without a valid "event"$/],
    ['{"kind":"policy","session.id":"1","decision":"refused"}', /^policy record without a valid "rule"$/],
  ];
  for (const [line, reason] of cases) {
    const decoded = decodeLine(line);
    t.equal(decoded.ok, false, line);
    if (!decoded.ok) t.match(decoded.reason, reason, line);
  }
  t.same(decodeLine('{"kind":"from_a_newer_writer"}'), { ok: true, event: null }, 'unknown kinds are skipped quietly');
  const ok = decodeLine('{"kind":"statement","session.id":"1","transaction.id":null,"statement.seq":3}');
  t.match(ok, { ok: true, event: { kind: 'statement', seq: 3, transactionId: null, text: null, savepointDepth: 0 } });
});
