/**
 * The connector that opens real ServerLinks for the pools: the upstream
 * target, and the credentials txproxy holds for each user (from the auth
 * file, or the SCRAM keys a client's login revealed).
 */
import type { ServerCredentials } from '../auth/client-authenticator.js';
import type { UpstreamTarget } from '../upstream/target.js';
import { LinkError, ServerLink } from '../server-link/server-link.js';
import type { LinkConnector, PoolKey } from './pool-link.js';

export interface ServerLinkConnectorOptions {
  target: UpstreamTarget;
  /** What to log in with as this user; null when txproxy holds nothing for it (yet). */
  credentials(key: PoolKey): ServerCredentials | null;
  /** Further startup parameters for the pool's links (application_name, …). */
  parameters?(key: PoolKey): Record<string, string>;
  /** Read the links' sockets into one reused buffer (configuration `read_buffer`). */
  reuseReadBuffer?: boolean;
}

export function serverLinkConnector(options: ServerLinkConnectorOptions): LinkConnector<ServerLink> {
  return async (key, timeoutMs) => {
    const credentials = options.credentials(key);
    if (credentials === null) throw new LinkError(`txproxy holds no credentials to log in as user "${key.user}"`);
    return ServerLink.open(options.target, { user: key.user, database: key.database, parameters: options.parameters?.(key) }, credentials, timeoutMs, options.reuseReadBuffer);
  };
}
