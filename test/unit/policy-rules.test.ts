import t from 'tap';
import { buildConfig, ConfigError, parseConfigFile } from '../../src/config/load.js';
import type { MatchContext } from '../../src/policy/matchers.js';
import { policiesSchema, type PoliciesConfig } from '../../src/policy/policy-config.js';
import { PolicySet } from '../../src/policy/policy-set.js';
import type { RequestInfo } from '../../src/tracker/types.js';

const compile = (policies: unknown) => PolicySet.compile(policiesSchema.parse(policies) as PoliciesConfig);

function request(tags: Record<string, string> | null): RequestInfo {
  return {
    id: 's.r1',
    traceId: null,
    route: tags?.route ?? null,
    controller: tags?.controller ?? null,
    action: tags?.action ?? null,
    application: tags?.application ?? null,
    framework: tags?.framework ?? null,
    tags,
  };
}

function context(overrides: Partial<MatchContext> & { tags?: Record<string, string> } = {}): MatchContext {
  const { tags = null, ...rest } = overrides;
  return { user: 'app', database: 'shop', applicationName: '', clientAddress: '10.1.2.3', request: request(tags), ...rest };
}

t.test('the policies section is validated with the key named', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['unknown rule key', { rules: [{ name: 'a', mode: 'atomic', bogus: 1 }] }, /unknown key 'policies\.rules\.0\.bogus'/],
    ['unknown match key', { rules: [{ name: 'a', match: { host: 'x' } }] }, /unknown key 'policies\.rules\.0\.match\.host'/],
    ['bad mode', { rules: [{ name: 'a', mode: 'strict' }] }, /'policies\.rules\.0\.mode'/],
    ['bad action', { default: { action: 'block' } }, /'policies\.default\.action'/],
    ['bad CIDR', { rules: [{ name: 'a', match: { client_address: ['10.0.0.0/8', '10.0.0.0/33'] } }] }, /'policies\.rules\.0\.match\.client_address' in \S+: invalid address or CIDR '10\.0\.0\.0\/33'/],
    ['not an address', { rules: [{ name: 'a', match: { client_address: 'localhost' } }] }, /invalid address or CIDR 'localhost'/],
    ['bad duration', { default: { limits: { idle_in_transaction_timeout: 'soon' } } }, /'policies\.default\.limits\.idle_in_transaction_timeout' in \S+: expected a positive duration/],
    ['zero duration', { default: { limits: { max_transaction_duration: 0 } } }, /'policies\.default\.limits\.max_transaction_duration'/],
    ['negative depth', { rules: [{ name: 'a', limits: { max_savepoint_depth: -1 } }] }, /'policies\.rules\.0\.limits\.max_savepoint_depth'/],
    ['duplicate names', { rules: [{ name: 'a' }, { name: 'a' }] }, /'policies\.rules\.1\.name' in \S+: duplicate rule name 'a'/],
    ['default is taken', { rules: [{ name: 'default' }] }, /'policies\.rules\.0\.name' in \S+: duplicate rule name 'default'/],
    ['bad name', { rules: [{ name: 'has space' }] }, /'policies\.rules\.0\.name' in \S+: expected 1 to 64 letters/],
    ['missing name', { rules: [{ mode: 'atomic' }] }, /'policies\.rules\.0\.name'/],
    ['empty glob list', { rules: [{ name: 'a', match: { user: [] } }] }, /'policies\.rules\.0\.match\.user'/],
    ['unknown clean-end outcome', { rules: [{ name: 'a', on_clean_end: 'maybe' }] }, /'policies\.rules\.0\.on_clean_end'/],
  ];
  for (const [what, policies, message] of cases) {
    t.throws(() => buildConfig({ policies }, {}, {}, 'txproxy.yaml'), { name: 'ConfigError', message }, what);
  }
  t.ok(new ConfigError('x') instanceof Error);
});

t.test('an absent or empty policies section means no policies', async (t) => {
  t.equal(buildConfig({}, {}, {}).policies, undefined);
  t.equal(buildConfig({ policies: null }, {}, {}).policies, undefined);
  const set = PolicySet.compile(undefined);
  t.equal(set.enabled, false);
  t.equal(set.forSession(context()).enforcing, false);
  const configured = buildConfig({ policies: {} }, {}, {}).policies;
  t.match(configured, { default: { mode: 'autocommit', action: 'enforce', limits: {} }, rules: [] });
  t.equal(PolicySet.compile(configured).enabled, true);
});

t.test('rules match in order; the first that matches decides, else the default', async (t) => {
  const set = compile({
    default: { mode: 'autocommit' },
    rules: [
      { name: 'admins', match: { user: ['admin', 'root'] }, mode: 'autocommit' },
      { name: 'office', match: { client_address: ['192.168.0.0/16', 'fd00::/8'] }, mode: 'read-only' },
      { name: 'reports', match: { application_name: 'report-*', database: 'shop' }, mode: 'read-only' },
      { name: 'checkout', match: { route: '/checkout/*', user: 'app*' }, mode: 'single-transaction' },
      { name: 'api', match: { route: '/api/**' }, mode: 'atomic' },
      { name: 'orders-controller', match: { controller: 'OrdersController', action: ['create', 'update'] }, mode: 'atomic' },
      { name: 'rails', match: { framework: 'rails*', application: 'shop' }, mode: 'atomic' },
    ],
  });
  const cases: [string, MatchContext, string][] = [
    ['nothing matches', context(), 'default'],
    ['user list', context({ user: 'root' }), 'admins'],
    ['user glob is not a substring match', context({ user: 'rootless' }), 'default'],
    ['IPv4 CIDR', context({ clientAddress: '192.168.7.1' }), 'office'],
    ['IPv4-mapped IPv6 address', context({ clientAddress: '::ffff:192.168.7.1' }), 'office'],
    ['IPv6 CIDR', context({ clientAddress: 'fd12::1' }), 'office'],
    ['outside the CIDRs', context({ clientAddress: '10.0.0.1' }), 'default'],
    ['Unix socket clients never match an address', context({ clientAddress: 'local', user: 'x' }), 'default'],
    ['application_name glob and database', context({ applicationName: 'report-daily' }), 'reports'],
    ['all matchers of a rule must match', context({ applicationName: 'report-daily', database: 'other' }), 'default'],
    ['route glob', context({ tags: { route: '/checkout/pay' } }), 'checkout'],
    ['a single * does not cross /', context({ tags: { route: '/checkout/pay/card' } }), 'default'],
    ['** crosses /', context({ tags: { route: '/api/v1/orders/7' } }), 'api'],
    ['route rule with a user that does not match', context({ user: 'batch', tags: { route: '/checkout/pay' } }), 'default'],
    ['controller and action', context({ tags: { controller: 'OrdersController', action: 'update' } }), 'orders-controller'],
    ['action not in the list', context({ tags: { controller: 'OrdersController', action: 'show' } }), 'default'],
    ['framework and application', context({ tags: { framework: 'rails_7.1', application: 'shop' } }), 'rails'],
    ['untagged requests never match a tag rule', context({ request: null }), 'default'],
    ['earlier rules win', context({ user: 'admin', tags: { route: '/api/x' } }), 'admins'],
  ];
  for (const [what, ctx, expected] of cases) t.equal(set.resolve(ctx).name, expected, what);
});

t.test('a session keeps only the rules its connection can match, and needs hooks only for enforcing ones', async (t) => {
  const set = compile({
    rules: [
      { name: 'reports', match: { application_name: 'reports' }, mode: 'read-only' },
      { name: 'office', match: { client_address: '192.168.0.0/16' }, mode: 'autocommit' },
      { name: 'checkout', match: { route: '/checkout' }, mode: 'single-transaction' },
      { name: 'idle', match: { user: 'batch' }, limits: { idle_in_transaction_timeout: '1m' } },
    ],
  });
  const names = (ctx: MatchContext) => set.forSession(ctx).candidates.map((r) => r.name);
  t.same(names(context()), ['checkout'], 'request-level rules stay candidates');
  t.same(names(context({ applicationName: 'reports', clientAddress: '192.168.1.1', user: 'batch' })), ['reports', 'office', 'checkout', 'idle']);
  t.equal(set.forSession(context()).enforcing, true, 'checkout could match any request');
  const passive = compile({ rules: [{ name: 'office', match: { client_address: '192.168.0.0/16' }, mode: 'autocommit' }] });
  t.equal(passive.forSession(context({ clientAddress: '192.168.1.1' })).enforcing, false, 'autocommit without limits only observes');
  const elsewhere = compile({ rules: [{ name: 'reports', match: { application_name: 'reports' }, mode: 'read-only' }] });
  t.equal(elsewhere.forSession(context()).enforcing, false, 'a read-only rule for other sessions costs this one nothing');
  t.equal(compile({ default: { limits: { max_savepoint_depth: 5 } } }).forSession(context()).enforcing, true, 'a default limit applies to everyone');
});

t.test('rules inherit what they leave unset from the default; null lifts a limit', async (t) => {
  const set = compile({
    default: { mode: 'atomic', action: 'warn', limits: { idle_in_transaction_timeout: '30s', max_savepoint_depth: 10 } },
    rules: [
      { name: 'inherits', match: { user: 'a' } },
      { name: 'overrides', match: { user: 'b' }, mode: 'read-only', action: 'enforce', limits: { idle_in_transaction_timeout: 500, max_savepoint_depth: null, max_statements_per_transaction: 100 } },
    ],
  });
  t.match(set.resolve(context({ user: 'a' })), {
    mode: 'atomic',
    action: 'warn',
    limits: { idleInTransactionTimeoutMs: 30_000, maxSavepointDepth: 10, maxStatementsPerTransaction: null, maxTransactionDurationMs: null },
  });
  t.match(set.resolve(context({ user: 'b' })), {
    mode: 'read-only',
    action: 'enforce',
    limits: { idleInTransactionTimeoutMs: 500, maxSavepointDepth: null, maxStatementsPerTransaction: 100 },
  });
});

t.test('rules explain themselves', async (t) => {
  const set = compile({
    rules: [
      { name: 'checkout', match: { user: 'app', client_address: ['10.0.0.0/8', '::1'], route: '/checkout/*' }, mode: 'single-transaction', limits: { max_savepoint_depth: 3 } },
    ],
  });
  t.equal(
    set.rules[0].explain(),
    "rule 'checkout' (single-transaction, enforce, on_clean_end=commit, max_savepoint_depth=3) for user matching 'app' and client address in any of '10.0.0.0/8', '::1' and sqlcommenter route matching '/checkout/*'",
  );
  t.equal(set.fallback.explain(), "rule 'default' (autocommit, enforce) for every request");
});

t.test('the example configuration is valid and means what its comments say', async (t) => {
  const { readFileSync } = await import('node:fs');
  const file = new URL('../../config/policies.example.yaml', import.meta.url);
  const config = buildConfig(parseConfigFile(readFileSync(file, 'utf8'), 'policies.example.yaml'), {}, {});
  const set = PolicySet.compile(config.policies);
  t.same(set.rules.map((r) => `${r.name}:${r.mode}:${r.action}`), [
    'admin:autocommit:enforce',
    'reports:read-only:enforce',
    'checkout:single-transaction:enforce',
    'api-atomic:atomic:warn',
    'preview:dry-run:enforce',
  ]);
  t.equal(set.resolve(context({ user: 'admin_jo' })).limits.idleInTransactionTimeoutMs, null);
  t.equal(set.resolve(context({ user: 'web', tags: { route: '/checkout/pay' } })).name, 'checkout');
  t.equal(set.resolve(context({ user: 'web', tags: { route: '/checkout/pay' } })).onCleanEnd, 'rollback');
  t.equal(set.fallback.onCleanEnd, 'commit', 'on_clean_end defaults to commit');
  t.match(set.resolve(context({ user: 'web', tags: { route: '/checkout/pay' } })).limits, { idleInTransactionTimeoutMs: 60_000, maxTransactionDurationMs: 10_000 });
  t.equal(set.resolve(context({ user: 'web', clientAddress: '10.2.3.4' })).name, 'api-atomic');
  t.equal(set.resolve(context({ user: 'web', clientAddress: '192.168.1.1' })).name, 'default');
});

t.test('on_clean_end: inherited from the default, overridden per rule, checked', async (t) => {
  const set = compile({
    default: { mode: 'single-transaction', on_clean_end: 'rollback' },
    rules: [
      { name: 'inherits', match: { user: 'a' } },
      { name: 'commits', match: { user: 'b' }, on_clean_end: 'commit' },
    ],
  });
  t.same(set.rules.map((r) => r.onCleanEnd), ['rollback', 'commit']);
  t.equal(set.fallback.onCleanEnd, 'rollback');
});
