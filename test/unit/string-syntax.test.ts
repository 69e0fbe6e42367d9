/**
 * standard_conforming_strings: how the lexer reads strings under each
 * setting, how statements split, and how the tracker follows the session's
 * setting from ParameterStatus and from the client's own SET statements.
 */
import t from 'tap';
import { splitStatements } from '../../src/sql/classify.js';
import { lex, TokenKind } from '../../src/sql/lexer.js';
import { extractSqlCommenter } from '../../src/sql/sqlcommenter.js';
import { splitStatementsCached } from '../../src/sql/statement-cache.js';
import { parseBool } from '../../src/tracker/string-syntax.js';
import { trackerHarness } from '../helpers/tracker-harness.js';
import { serialize, server } from '../helpers/messages.js';

const KIND_NAMES: Record<number, string> = {
  [TokenKind.Word]: 'word',
  [TokenKind.QuotedIdent]: 'ident',
  [TokenKind.String]: 'string',
  [TokenKind.DollarString]: 'dollar',
  [TokenKind.Number]: 'number',
  [TokenKind.Param]: 'param',
  [TokenKind.Comment]: 'comment',
  [TokenKind.Semicolon]: ';',
  [TokenKind.OpenParen]: '(',
  [TokenKind.CloseParen]: ')',
  [TokenKind.Other]: 'other',
};

function tokens(sql: string, standardConformingStrings: boolean): string[] {
  const out: string[] = [];
  lex(sql, (kind, start, end) => out.push(`${KIND_NAMES[kind]} ${sql.slice(start, end)}`), standardConformingStrings);
  return out;
}

t.test('lexer: plain strings take backslash escapes only with standard_conforming_strings off', async (t) => {
  const cases: [string, string[], string[]][] = [
    // sql, tokens with the setting on, tokens with it off
    ["'ab\\'secret'", ["string 'ab\\'", 'word secret', "string '"], ["string 'ab\\'secret'"]],
    ["'a\\\\' x", ["string 'a\\\\'", 'word x'], ["string 'a\\\\'", 'word x']],
    ["'C:\\' , 'd'", ["string 'C:\\'", 'other ,', "string 'd'"], ["string 'C:\\' , '", 'word d', "string '"]],
    ["'it''s'", ["string 'it''s'"], ["string 'it''s'"]],
    // N'…' is a plain string to the server's scanner
    ["N'a\\'c'", ["string N'a\\'", 'word c', "string '"], ["string N'a\\'c'"]],
    // E'…' always takes escapes; B'…' and X'…' never do
    ["E'a\\'b'", ["string E'a\\'b'"], ["string E'a\\'b'"]],
    ["B'1\\' x", ["string B'1\\'", 'word x'], ["string B'1\\'", 'word x']],
    ["X'f\\' x", ["string X'f\\'", 'word x'], ["string X'f\\'", 'word x']],
    // U&'…' has no backslash escapes (the server refuses it when the setting is off)
    ["U&'a\\' x", ["string U&'a\\'", 'word x'], ["string U&'a\\'", 'word x']],
    // not strings: identifiers and dollar quotes are the same under both
    ['"a\\" x', ['ident "a\\"', 'word x'], ['ident "a\\"', 'word x']],
    ['$$a\\$$ x', ['dollar $$a\\$$', 'word x'], ['dollar $$a\\$$', 'word x']],
  ];
  for (const [sql, on, off] of cases) {
    t.same(tokens(sql, true), on, `on: ${sql}`);
    t.same(tokens(sql, false), off, `off: ${sql}`);
  }
  const defaults: string[] = [];
  lex("'a\\'c'", (kind, start, end) => defaults.push(`${KIND_NAMES[kind]} ${"'a\\'c'".slice(start, end)}`));
  t.same(defaults, ["string 'a\\'", 'word c', "string '"], 'without the argument, the setting is on (PostgreSQL’s default)');
});

t.test('statements split where the server splits them under each setting', async (t) => {
  const sql = "SELECT 'a\\''; DELETE FROM t; --'";
  t.same(splitStatements(sql, true).map((s) => s.operation), ['SELECT'], 'on: one string to the end');
  t.same(splitStatements(sql, false).map((s) => s.operation), ['SELECT', 'DELETE'], 'off: the DELETE is a statement');
  t.same(splitStatementsCached(sql, false).map((s) => s.operation), ['SELECT', 'DELETE'], 'the cache does not answer for the other setting');
  t.same(splitStatementsCached(sql, true).map((s) => s.operation), ['SELECT']);
  t.equal(splitStatements(sql, false)[0].standardConformingStrings, false, 'statements say how they were read');
  t.equal(splitStatements('SELECT 1', true)[0].standardConformingStrings, true);
  const commented = "SELECT 'a\\' /*route='x'*/'";
  t.same(extractSqlCommenter(commented, true).tags, { route: 'x' }, 'on: the comment is outside the strings');
  t.same(extractSqlCommenter(commented, false).tags, null, 'off: the comment is inside a string');
});

t.test('parseBool accepts what PostgreSQL accepts for a boolean setting', async (t) => {
  for (const v of ['on', 'ON', 'true', 't', 'tr', 'yes', 'y', '1']) t.equal(parseBool(v), true, v);
  for (const v of ['off', 'of', 'false', 'f', 'no', 'n', '0']) t.equal(parseBool(v), false, v);
  for (const v of ['', 'o', '2', 'onn', 'offf', 'maybe']) t.equal(parseBool(v), null, v);
});

t.test('tracker: follows standard_conforming_strings from ParameterStatus', async (t) => {
  const h = trackerHarness();
  t.equal(h.tracker.standardConformingStrings, true);
  h.client(serialize.query('SET standard_conforming_strings = off'));
  t.equal(h.tracker.standardConformingStrings, false, "the client's SET counts for its next message at once");
  h.tracker.onParameterStatus('standard_conforming_strings', 'off');
  h.server(server.complete('SET'), server.ready('I'));
  t.equal(h.tracker.standardConformingStrings, false);
  h.client(serialize.query("SELECT 'ab\\'c'; SELECT 2"));
  h.server(server.complete('SELECT 1'), server.complete('SELECT 1'), server.ready('I'));
  t.same(
    h.statements.slice(1).map((s) => [s.text, s.info.standardConformingStrings]),
    [
      ["SELECT 'ab\\'c'", false],
      ['SELECT 2', false],
    ],
  );
  // A change the client's SQL does not show (set_config): the report alone tells.
  h.client(serialize.query("SELECT set_config('standard_conforming_strings', 'on', false)"));
  t.equal(h.tracker.standardConformingStrings, false);
  h.tracker.onParameterStatus('standard_conforming_strings', 'on');
  h.server(server.complete('SELECT 1'), server.ready('I'));
  t.equal(h.tracker.standardConformingStrings, true);
});

t.test('tracker: a SET in an extended batch counts for the Parse after it, before the server reports it', async (t) => {
  const h = trackerHarness();
  h.client(
    serialize.parse({ text: 'SET standard_conforming_strings TO off' }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.parse({ text: "SELECT 'a\\'b'" }),
    serialize.bind({}),
    serialize.execute({}),
    serialize.sync(),
  );
  h.server(server.parseComplete(), server.bindComplete(), server.complete('SET'), server.parseComplete(), server.bindComplete(), server.complete('SELECT 1'));
  h.tracker.onParameterStatus('standard_conforming_strings', 'off');
  h.server(server.ready('I'));
  t.same(
    h.statements.map((s) => [s.text, s.info.standardConformingStrings]),
    [
      ['SET standard_conforming_strings TO off', true],
      ["SELECT 'a\\'b'", false],
    ],
  );
  t.equal(h.tracker.standardConformingStrings, false);
});

t.test('tracker: a report for an earlier message does not undo a SET still in flight', async (t) => {
  const h = trackerHarness();
  h.client(serialize.query('SET standard_conforming_strings = off'), serialize.query('SET standard_conforming_strings = on'));
  t.equal(h.tracker.standardConformingStrings, true);
  // The first Query's report arrives while the second is in flight.
  h.tracker.onParameterStatus('standard_conforming_strings', 'off');
  h.server(server.complete('SET'), server.ready('I'));
  t.equal(h.tracker.standardConformingStrings, true, 'the second SET still stands');
  h.tracker.onParameterStatus('standard_conforming_strings', 'on');
  h.server(server.complete('SET'), server.ready('I'));
  t.equal(h.tracker.standardConformingStrings, true);
});

t.test('tracker: a SET that failed changes nothing once the session is idle', async (t) => {
  const h = trackerHarness();
  h.client(serialize.query('BEGIN'));
  h.server(server.complete('BEGIN'), server.ready('T'));
  h.client(serialize.query('SELECT 1/0'));
  h.server(server.error('22012'), server.ready('E'));
  h.client(serialize.query('SET standard_conforming_strings = off'));
  t.equal(h.tracker.standardConformingStrings, false, 'predicted while in flight');
  h.server(server.error('25P02'), server.ready('E'));
  t.equal(h.tracker.standardConformingStrings, true, 'no report came: the setting did not change');
});

t.test('tracker: RESET, SET … TO DEFAULT and DISCARD ALL go back to the value the session started with', async (t) => {
  for (const reset of ['RESET standard_conforming_strings', 'RESET ALL', 'DISCARD ALL', 'SET standard_conforming_strings TO DEFAULT', 'SET SESSION standard_conforming_strings = DEFAULT']) {
    const h = trackerHarness();
    h.client(serialize.query("SET standard_conforming_strings = 'off'"));
    h.tracker.onParameterStatus('standard_conforming_strings', 'off');
    h.server(server.complete('SET'), server.ready('I'));
    t.equal(h.tracker.standardConformingStrings, false);
    h.client(serialize.query(reset));
    t.equal(h.tracker.standardConformingStrings, true, reset);
  }
  const h = trackerHarness();
  h.client(serialize.query('SET application_name = off'), serialize.query('SET LOCAL standard_conforming_strings = false'));
  t.equal(h.tracker.standardConformingStrings, false, 'SET LOCAL counts too; the server reports its end');
});
