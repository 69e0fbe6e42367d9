/**
 * The `policies:` section of the configuration: a default and an ordered
 * list of rules. docs/policies.md documents every key; keep the two in step.
 *
 * Everything a rule can get wrong is caught here, at start and at reload,
 * with the key named: unknown keys, a malformed CIDR, a bad glob, a
 * duplicate rule name.
 */
import { isIP } from 'node:net';
import picomatch from 'picomatch';
import { z } from 'zod';
import { parseDuration } from '../config/duration.js';

export const POLICY_MODES = ['autocommit', 'atomic', 'single-transaction', 'dry-run', 'read-only'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

export const POLICY_ACTIONS = ['enforce', 'warn'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** How single-transaction ends a request that ends cleanly without saying how it went (docs/policies.md). */
export const CLEAN_END_OUTCOMES = ['commit', 'rollback'] as const;
export type CleanEndOutcome = (typeof CLEAN_END_OUTCOMES)[number];

/** A positive duration (`500ms`, `30s`, `5m`, or milliseconds); null: no limit. */
const limitDuration = z
  .union([z.number(), z.string()])
  .nullable()
  .transform((value, ctx) => {
    if (value === null) return null;
    const ms = parseDuration(value);
    if (ms === null || ms <= 0) {
      ctx.addIssue({ code: 'custom', message: 'expected a positive duration such as 500ms, 30s, 5m, or null for no limit' });
      return z.NEVER;
    }
    return ms;
  });

const limitsSchema = z
  .object({
    /** How long a transaction may last, from its first statement. */
    max_transaction_duration: limitDuration.optional(),
    /** How long a session may sit idle inside an open transaction. */
    idle_in_transaction_timeout: limitDuration.optional(),
    /** How many savepoints may be open at once (0: none). */
    max_savepoint_depth: z.number().int().min(0).nullable().optional(),
    /** How many statements one transaction may run. */
    max_statements_per_transaction: z.number().int().min(1).nullable().optional(),
  })
  .strict();

export type LimitsConfig = z.output<typeof limitsSchema>;

/** One glob or several (any of them matches). */
const globs = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .superRefine((patterns, ctx) => {
    for (const pattern of patterns) {
      try {
        picomatch.makeRe(pattern);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: `invalid glob '${pattern}': ${(err as Error).message}` });
      }
    }
  });

/** `10.0.0.0/8`, `::1/128` or a single address; one or several. */
const cidrs = z
  .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
  .transform((v) => (Array.isArray(v) ? v : [v]))
  .superRefine((values, ctx) => {
    for (const value of values) {
      if (parseCidr(value) === null) ctx.addIssue({ code: 'custom', message: `invalid address or CIDR '${value}': expected e.g. 10.0.0.0/8, 192.168.1.7 or fd00::/8` });
    }
  });

const matchSchema = z
  .object({
    user: globs.optional(),
    database: globs.optional(),
    application_name: globs.optional(),
    client_address: cidrs.optional(),
    /** sqlcommenter keys of the request. */
    route: globs.optional(),
    controller: globs.optional(),
    action: globs.optional(),
    application: globs.optional(),
    framework: globs.optional(),
  })
  .strict();

export type MatchConfig = z.output<typeof matchSchema>;

const RULE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

const ruleSchema = z
  .object({
    /** Names the rule in errors, traces and the metric label. */
    name: z.string().regex(RULE_NAME, { message: 'expected 1 to 64 letters, digits, _ . : or -' }),
    match: matchSchema.default({}),
    /** Unset: the default's mode. */
    mode: z.enum(POLICY_MODES).optional(),
    /** Unset: the default's action. */
    action: z.enum(POLICY_ACTIONS).optional(),
    /** Unset: the default's. */
    on_clean_end: z.enum(CLEAN_END_OUTCOMES).optional(),
    /** Each unset limit falls back to the default's. */
    limits: limitsSchema.default({}),
  })
  .strict();

export type RuleConfig = z.output<typeof ruleSchema>;

const defaultSchema = z
  .object({
    mode: z.enum(POLICY_MODES).default('autocommit'),
    action: z.enum(POLICY_ACTIONS).default('enforce'),
    /** single-transaction: what a clean end without an outcome mark does. */
    on_clean_end: z.enum(CLEAN_END_OUTCOMES).default('commit'),
    limits: limitsSchema.default({}),
  })
  .strict();

export const policiesSchema = z
  .object({
    /** Applies to requests no rule matches; rules inherit what they leave unset. */
    default: defaultSchema.default({ mode: 'autocommit', action: 'enforce', on_clean_end: 'commit', limits: {} }),
    /** Tried in order; the first that matches decides. */
    rules: z.array(ruleSchema).default([]),
  })
  .strict()
  .superRefine((policies, ctx) => {
    const seen = new Set<string>(['default']);
    policies.rules.forEach((rule, i) => {
      if (seen.has(rule.name)) {
        ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name '${rule.name}' ('default' is taken by the default)` });
      }
      seen.add(rule.name);
    });
  });

export type PoliciesConfig = z.output<typeof policiesSchema>;

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Parses `addr/prefix` or a bare address (a /32 or /128); null when malformed. */
export function parseCidr(value: string): Cidr | null {
  const slash = value.indexOf('/');
  const address = (slash < 0 ? value : value.slice(0, slash)).trim();
  const version = isIP(address);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const text = value.slice(slash + 1).trim();
    if (!/^\d{1,3}$/.test(text)) return null;
    prefix = Number(text);
    if (prefix > max) return null;
  }
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}
