/**
 * What txproxy knows of one server connection's session in transaction
 * pooling, where the connection serves one client's transaction after
 * another's: the protocol-level statements prepared on it (under txproxy's
 * names) and the session settings it has now, so that the next client is
 * given only what differs.
 *
 * Kept beside the link rather than in it: only transaction pooling needs
 * it, and it goes when the link goes.
 */
import { ServerStatementCache } from './prepared-statements.js';

export interface LinkSessionState {
  readonly statements: ServerStatementCache;
  /** Settings of source 'session' on the server: name → value as current_setting shows it. */
  settings: Map<string, string>;
}

const states = new WeakMap<object, LinkSessionState>();

/** The state of `link`, new (nothing prepared, no setting) the first time it is asked for. */
export function linkSessionState(link: object, maxPreparedStatements: number): LinkSessionState {
  let state = states.get(link);
  if (state === undefined) {
    state = { statements: new ServerStatementCache(maxPreparedStatements), settings: new Map() };
    states.set(link, state);
  }
  return state;
}

/** The link's session was reset (server_reset_query): it has nothing prepared and no setting. */
export function forgetLinkSessionState(link: object): void {
  states.delete(link);
}
