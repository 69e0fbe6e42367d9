/**
 * What traces keep of SQL and of error messages: literals blanked per the
 * session's string syntax (or under both when it is not known), passwords
 * masked in every mode, quoted values of error messages blanked.
 */
import t from 'tap';
import { classifyStatement } from '../../src/sql/classify.js';
import { redactMessage } from '../../src/sql/redact-message.js';
import { holdsSecret, maskSecrets, redactSql } from '../../src/sql/redact.js';
import { TraceText } from '../../src/trace/trace-text.js';

t.test('redaction follows standard_conforming_strings: off reads a backslash-escaped quote inside the string', async (t) => {
  const sql = "ALTER ROLE app PASSWORD 'ab\\'secret'";
  t.equal(redactSql(sql, false), 'ALTER ROLE app PASSWORD ?', 'off: one string');
  t.equal(redactSql(sql, true), 'ALTER ROLE app PASSWORD ?secret?', 'on: what the server reads (a syntax error) — hence the masking below');
  t.equal(redactSql(sql), 'ALTER ROLE app PASSWORD ?', 'unknown setting: blanked under both readings');
  t.equal(redactSql(maskSecrets(sql), true), 'ALTER ROLE app PASSWORD ?', 'masking first hides it under either reading');
});

t.test('redaction with the setting unknown never keeps what either reading holds as a literal', async (t) => {
  const cases: [string, string][] = [
    ["SELECT 'C:\\', name FROM users WHERE email = 'a@b.c'", 'SELECT ?'],
    ["SELECT 'it\\'s', id FROM t WHERE x = 'y'", 'SELECT ?'],
    ["SELECT E'a\\'b', 1", 'SELECT ?, ?'],
    ["SELECT 'plain', 2 -- note\n", 'SELECT ?, ? --\n'],
  ];
  for (const [sql, expected] of cases) t.equal(redactSql(sql), expected, sql);
  // With the setting known, the same texts keep their structure.
  t.equal(redactSql("SELECT 'C:\\', name FROM users WHERE email = 'a@b.c'", true), 'SELECT ?, name FROM users WHERE email = ?');
  t.equal(redactSql("SELECT 'it\\'s', id FROM t WHERE x = 'y'", false), 'SELECT ?, id FROM t WHERE x = ?');
  // Every character a literal holds under either reading is gone: the secret letters never survive.
  const alphabet = ["'", '\\', 's', ' ', ';', '-', '\n', 'E', '$'];
  let checked = 0;
  for (let i = 0; i < 3000; i++) {
    let body = '';
    for (let j = 0; j < 10; j++) body += alphabet[Math.floor(Math.random() * alphabet.length)];
    const sql = `SELECT ${body}`;
    const out = redactSql(sql);
    for (const scs of [true, false]) {
      // What this reading keeps is what its own redaction keeps; the union keeps no more of the letters.
      const exact = redactSql(sql, scs);
      if (count(out, 's') > count(exact, 's')) t.fail(`${JSON.stringify(sql)}: ${JSON.stringify(out)} keeps more than ${JSON.stringify(exact)}`);
    }
    checked++;
  }
  t.pass(`${checked} random texts`);
});

function count(text: string, ch: string): number {
  return text.split(ch).length - 1;
}

t.test('passwords are masked in CREATE/ALTER ROLE, USER, GROUP, user mappings and subscriptions', async (t) => {
  const cases: [string, string][] = [
    ["CREATE ROLE app LOGIN PASSWORD 'hunter2'", 'CREATE ROLE app LOGIN PASSWORD ?'],
    ["create user app with encrypted password 'md5abc' valid until 'infinity'", "create user app with encrypted password ? valid until 'infinity'"],
    ["ALTER USER \"App\" PASSWORD 'SCRAM-SHA-256$4096:c2FsdA==$a:b'", 'ALTER USER "App" PASSWORD ?'],
    ['ALTER ROLE app PASSWORD $pw$hunter2$pw$', 'ALTER ROLE app PASSWORD ?'],
    ["ALTER ROLE app PASSWORD E'hun\\'ter2'", 'ALTER ROLE app PASSWORD ?'],
    ['ALTER ROLE app PASSWORD hunter2', 'ALTER ROLE app PASSWORD ?'],
    ["ALTER ROLE password PASSWORD 'hunter2'", 'ALTER ROLE password PASSWORD ?'],
    ["CREATE GROUP g PASSWORD 'hunter2'", 'CREATE GROUP g PASSWORD ?'],
    ["CREATE ROLE a PASSWORD 'one' PASSWORD 'two'", 'CREATE ROLE a PASSWORD ? PASSWORD ?'],
    ["SELECT 1; ALTER ROLE app PASSWORD 'hunter2'; SELECT 'password'", "SELECT 1; ALTER ROLE app PASSWORD ?; SELECT 'password'"],
    ["ALTER ROLE app /* new */ PASSWORD /* it */ 'hunter2'", 'ALTER ROLE app /* new */ PASSWORD /* it */ ?'],
    ["CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password 'hunter2')", "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'app', password ?)"],
    ["ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password 'hunter2')", 'ALTER USER MAPPING FOR app SERVER s OPTIONS (SET password ?)'],
    ["CREATE SUBSCRIPTION s CONNECTION 'host=db password=hunter2' PUBLICATION p", 'CREATE SUBSCRIPTION s CONNECTION ? PUBLICATION p'],
    ["ALTER SUBSCRIPTION s CONNECTION 'host=db password=hunter2'", 'ALTER SUBSCRIPTION s CONNECTION ?'],
    // under both readings: the author meant the whole string
    ["ALTER ROLE app PASSWORD 'ab\\'secret'", 'ALTER ROLE app PASSWORD ?'],
  ];
  for (const [sql, expected] of cases) {
    t.equal(maskSecrets(sql), expected, sql);
    t.ok(holdsSecret(sql));
  }
  const untouched = [
    'ALTER ROLE app PASSWORD NULL',
    "SELECT password FROM users WHERE password = 'x'",
    "INSERT INTO users (name, password) VALUES ('a', 'b')",
    'ALTER TABLE users ALTER COLUMN password TYPE text',
    "ALTER TABLE t ALTER COLUMN password SET DEFAULT 'x'",
    'ALTER ROLE password RENAME TO pw',
    "CREATE TABLE password (connection text DEFAULT 'x')",
    "COMMENT ON COLUMN users.password IS 'the hash'",
    "SELECT 'ALTER ROLE a PASSWORD x'",
  ];
  for (const sql of untouched) {
    t.equal(maskSecrets(sql), sql, sql);
    t.notOk(holdsSecret(sql));
  }
});

t.test('error messages: quoted values are blanked, quoted object names kept', async (t) => {
  const cases: [string, string][] = [
    ['invalid input syntax for type integer: "secret133"', 'invalid input syntax for type integer: "?"'],
    ['value "99999999999" is out of range for type integer', 'value "?" is out of range for type integer'],
    ['invalid input value for enum mood: "furious"', 'invalid input value for enum mood: "?"'],
    ['unterminated quoted string at or near "\'hunter2"', 'unterminated quoted string at or near "?"'],
    ['syntax error at or near "hunter2"', 'syntax error at or near "?"'],
    ['invalid input syntax for type integer: "a"b" c"', 'invalid input syntax for type integer: "?"'],
    ['invalid value for parameter "TimeZone": "Mars/Base"', 'invalid value for parameter "TimeZone": "?"'],
    ['duplicate key value violates unique constraint "users_email_key"', 'duplicate key value violates unique constraint "users_email_key"'],
    ['null value in column "email" of relation "users" violates not-null constraint', 'null value in column "email" of relation "users" violates not-null constraint'],
    ['relation "orders" does not exist', 'relation "orders" does not exist'],
    ['password authentication failed for user "app"', 'password authentication failed for user "app"'],
    ['type "mood" does not exist', 'type "mood" does not exist'],
    ['division by zero', 'division by zero'],
    ['malformed array literal: "{1,', 'malformed array literal: "?"'],
  ];
  for (const [message, expected] of cases) t.equal(redactMessage(message), expected, message);
});

t.test('TraceText: what each trace.sql mode keeps', async (t) => {
  const password = "ALTER ROLE app PASSWORD 'hunter2'";
  const select = "SELECT * FROM t WHERE a = 'x'";
  const limits = { maxSqlLength: 16384, maxTagLength: 512 };
  const full = new TraceText({ sql: 'full', ...limits });
  const redacted = new TraceText({ sql: 'redacted', ...limits });
  const off = new TraceText({ sql: 'off', ...limits });
  t.equal(full.sql(select, classifyStatement(select)), select);
  t.equal(full.sql(password, classifyStatement(password)), 'ALTER ROLE app PASSWORD ?', 'full: passwords masked');
  t.equal(full.sql(password), 'ALTER ROLE app PASSWORD ?', 'full, text only: passwords masked');
  t.equal(redacted.sql(select, classifyStatement(select)), 'SELECT * FROM t WHERE a = ?');
  t.equal(off.sql(select), undefined);
  const message = 'invalid input syntax for type integer: "secret133"';
  t.equal(full.errorMessage(message), message, 'full: messages as sent');
  t.equal(redacted.errorMessage(message), 'invalid input syntax for type integer: "?"');
  t.equal(off.errorMessage(message), 'invalid input syntax for type integer: "?"', 'off keeps no more than redacted');
  t.equal(
    full.errorMessage('syntax error at or near "hunter2"', 'ALTER ROLE app PASSWORD hunter2'),
    'syntax error at or near "?"',
    'full: the message of a statement that held a password is redacted',
  );
});
