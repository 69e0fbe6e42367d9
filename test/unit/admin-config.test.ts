/**
 * The admin.* keys: the bearer token (from the file, a variable or its own
 * file), never shown in an error, and the /events subscriber limit.
 */
import t from 'tap';
import { adminTokenFromFile, buildConfig, ConfigError, settingsFromEnv } from '../../src/config/load.js';

const TOKEN = 'f3b1c0de9a8e7d6c5b4a39281706f5e4';

t.test('admin defaults: no token, 16 /events subscribers', async (t) => {
  t.same(buildConfig({}, {}, {}).admin, { token: null, token_file: null, max_event_subscribers: 16 });
});

t.test('admin.token from the file or TXPROXY_ADMIN_TOKEN; the variable wins', async (t) => {
  t.equal(buildConfig({ admin: { token: TOKEN } }, {}, {}).admin.token, TOKEN);
  const env = settingsFromEnv({ TXPROXY_ADMIN_TOKEN: TOKEN, TXPROXY_ADMIN_MAX_EVENT_SUBSCRIBERS: '4' });
  const config = buildConfig({ admin: { token: 'x'.repeat(40) } }, env, {});
  t.equal(config.admin.token, TOKEN);
  t.equal(config.admin.max_event_subscribers, 4);
  t.equal(buildConfig({}, settingsFromEnv({ TXPROXY_ADMIN_TOKEN_FILE: '/run/secrets/admin' }), {}).admin.token_file, '/run/secrets/admin');
});

t.test('an empty admin token is refused, wherever it comes from', async (t) => {
  t.throws(() => buildConfig({ admin: { token: '' } }, {}, {}), new ConfigError(
    "invalid value for 'admin.token' in configuration: expected at least 16 visible ASCII characters without spaces, such as the output of `openssl rand -hex 32`; got (hidden)",
  ));
  // An unset shell variable or a missing secret must not leave the endpoint open.
  t.throws(() => buildConfig({}, settingsFromEnv({ TXPROXY_ADMIN_TOKEN: '' }), {}), { message: /^invalid value for 'admin\.token' from TXPROXY_ADMIN_TOKEN: expected at least 16/ });
  t.throws(() => buildConfig({}, settingsFromEnv({ TXPROXY_ADMIN_TOKEN_FILE: '' }), {}), { message: /^invalid value for 'admin\.token_file' from TXPROXY_ADMIN_TOKEN_FILE: expected a file path/ });
  // Other variables keep their rule: empty means unset.
  t.equal(buildConfig({}, settingsFromEnv({ TXPROXY_HTTP: '' }), {}).http, '127.0.0.1:9930');
});

t.test('a short token, or one an HTTP header cannot carry, is refused and never shown', async (t) => {
  for (const token of ['short', 'fifteen-chars-x', 'sixteen chars ok', 'tab\there-and-long-enough', 'ümlaut-is-not-ascii-at-all', 12345678901234567890]) {
    const err = t.throws(() => buildConfig({ admin: { token } }, {}, {})) as Error;
    t.match(err.message, /^invalid value for 'admin\.token' in configuration: expected at least 16 visible ASCII characters/, String(token));
    t.notMatch(err.message, String(token), 'the token is not in the message');
  }
  t.equal(buildConfig({ admin: { token: 'a'.repeat(16) } }, {}, {}).admin.token, 'a'.repeat(16));
});

t.test('admin.token and admin.token_file together are refused', async (t) => {
  const err = t.throws(() => buildConfig({ admin: { token: TOKEN, token_file: '/run/secrets/admin' } }, {}, {})) as Error;
  t.match(err.message, "invalid value for 'admin.token' in configuration: set admin.token or admin.token_file, not both");
  t.notMatch(err.message, TOKEN);
});

t.test('admin.max_event_subscribers must be a whole number of at least 1', async (t) => {
  t.throws(() => buildConfig({ admin: { max_event_subscribers: 0 } }, {}, {}), { message: "invalid value for 'admin.max_event_subscribers' in configuration: expected a whole number of at least 1; got 0" });
  t.throws(() => buildConfig({}, settingsFromEnv({ TXPROXY_ADMIN_MAX_EVENT_SUBSCRIBERS: 'many' }), {}), {
    message: /'admin\.max_event_subscribers' from TXPROXY_ADMIN_MAX_EVENT_SUBSCRIBERS: expected a whole number/,
  });
  t.throws(() => buildConfig({ admin: { tokn: TOKEN } }, {}, {}), { message: /unknown key 'admin\.tokn'.*allowed in 'admin': token, token_file, max_event_subscribers/ });
});

t.test('a token file holds the token alone; its final line break is not part of it', async (t) => {
  t.equal(adminTokenFromFile(`${TOKEN}\n`, '/run/secrets/admin'), TOKEN);
  t.equal(adminTokenFromFile(`${TOKEN}\r\n`, '/run/secrets/admin'), TOKEN);
  t.equal(adminTokenFromFile(TOKEN, '/run/secrets/admin'), TOKEN);
  for (const text of ['', '\n', 'short\n', `${TOKEN} ${TOKEN}\n`, `${TOKEN}\n${TOKEN}\n`]) {
    const err = t.throws(() => adminTokenFromFile(text, '/run/secrets/admin'), ConfigError) as Error;
    t.match(err.message, "invalid value for 'admin.token_file': /run/secrets/admin must hold only the token, expected at least 16");
    t.notMatch(err.message, TOKEN);
  }
});
