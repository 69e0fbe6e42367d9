/**
 * What a rule matches on, as small matcher classes: each answers
 * `matches(context)` and can `explain()` itself for docs, logs and errors.
 *
 * Session matchers (user, database, application_name, client address)
 * read what the connection fixes, so a rule that fails one of them can be
 * set aside for that session (until application_name changes); the
 * sqlcommenter matchers are checked per request.
 */
import { BlockList, isIP, isIPv4 } from 'node:net';
import picomatch from 'picomatch';
import type { RequestInfo } from '../tracker/types.js';
import { parseCidr, type MatchConfig } from './policy-config.js';

/** Who is asking: the session's startup parameters and the request being served. */
export interface MatchContext {
  user: string;
  database: string;
  applicationName: string;
  clientAddress: string;
  /** null before the session has a request (never, once it is ready). */
  request: RequestInfo | null;
}

export interface Matcher {
  /** True when the matcher reads only what the connection sets (startup parameters, address). */
  readonly sessionLevel: boolean;
  matches(context: MatchContext): boolean;
  explain(): string;
}

const GLOB_OPTIONS = { dot: true, nocase: false } as const;

/** One of the session's text fields against globs. */
export class SessionFieldMatcher implements Matcher {
  private readonly test: (value: string) => boolean;

  constructor(
    readonly field: 'user' | 'database' | 'applicationName',
    private readonly patterns: string[],
  ) {
    this.test = picomatch(patterns, GLOB_OPTIONS);
  }

  /** application_name can change (SET application_name): the session re-reads its rules when it does. */
  readonly sessionLevel = true;

  matches(context: MatchContext): boolean {
    return this.test(context[this.field]);
  }

  explain(): string {
    const name = this.field === 'applicationName' ? 'application_name' : this.field;
    return `${name} matching ${describeList(this.patterns)}`;
  }
}

/** The client's address against CIDR ranges. Unix-socket clients never match. */
export class ClientAddressMatcher implements Matcher {
  readonly sessionLevel = true;
  private readonly blocks = new BlockList();

  constructor(private readonly ranges: string[]) {
    for (const range of ranges) {
      const cidr = parseCidr(range)!;
      this.blocks.addSubnet(cidr.address, cidr.prefix, cidr.family);
    }
  }

  matches(context: MatchContext): boolean {
    const address = plainAddress(context.clientAddress);
    if (address === null) return false;
    return this.blocks.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  }

  explain(): string {
    return `client address in ${describeList(this.ranges)}`;
  }
}

export type RequestTagKey = 'route' | 'controller' | 'action' | 'application' | 'framework';

/** A sqlcommenter key of the current request against globs; untagged requests never match. */
export class RequestTagMatcher implements Matcher {
  readonly sessionLevel = false;
  private readonly test: (value: string) => boolean;

  constructor(
    readonly key: RequestTagKey,
    private readonly patterns: string[],
  ) {
    this.test = picomatch(patterns, GLOB_OPTIONS);
  }

  matches(context: MatchContext): boolean {
    const value = context.request?.[this.key] ?? null;
    return value !== null && this.test(value);
  }

  explain(): string {
    return `sqlcommenter ${this.key} matching ${describeList(this.patterns)}`;
  }
}

/** The matchers a `match:` block asks for; all must match (none: everything matches). */
export function buildMatchers(match: MatchConfig): Matcher[] {
  const matchers: Matcher[] = [];
  if (match.user) matchers.push(new SessionFieldMatcher('user', match.user));
  if (match.database) matchers.push(new SessionFieldMatcher('database', match.database));
  if (match.application_name) matchers.push(new SessionFieldMatcher('applicationName', match.application_name));
  if (match.client_address) matchers.push(new ClientAddressMatcher(match.client_address));
  for (const key of ['route', 'controller', 'action', 'application', 'framework'] as const) {
    const patterns = match[key];
    if (patterns) matchers.push(new RequestTagMatcher(key, patterns));
  }
  return matchers;
}

/** `::ffff:10.1.2.3` → `10.1.2.3`; null for non-IP addresses (Unix sockets). */
function plainAddress(address: string): string | null {
  if (address.startsWith('::ffff:') && isIPv4(address.slice(7))) return address.slice(7);
  return isIP(address) === 0 ? null : address;
}

function describeList(values: string[]): string {
  return values.length === 1 ? `'${values[0]}'` : `any of ${values.map((v) => `'${v}'`).join(', ')}`;
}
