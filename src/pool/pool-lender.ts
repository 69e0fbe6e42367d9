/**
 * The pools as client sessions borrow from them: a session asks for a
 * server connection of its (database, user) with the credentials its
 * client's login left, and gives it back reusable or not.
 *
 * Credentials are remembered per user for the pool's next logins: what
 * the auth file holds (a password or an md5 hash) is the same for every
 * client; SCRAM keys a client's proof revealed (pass-through) are kept from
 * the latest login, so a changed password takes effect with the next client.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServerCredentials } from '../auth/client-authenticator.js';
import type { UpstreamTarget } from '../upstream/target.js';
import type { LinkIdentity, ServerLink } from '../server-link/server-link.js';
import { serverLinkConnector } from './link-connector.js';
import type { PoolConfig, PoolMode } from './pool-config.js';
import { PoolManager } from './pool-manager.js';
import type { PoolError } from './pool-errors.js';
import type { Ticket } from './wait-queue.js';
import type { LinkLender } from './pooled-connect.js';

export interface PoolLenderOptions {
  config: PoolConfig;
  mode: PoolMode;
  target: UpstreamTarget;
  registry?: Registry;
  log: Logger;
  /** Read server sockets into one reused buffer (configuration `read_buffer`). */
  reuseReadBuffer: boolean;
}

export class PoolLender implements LinkLender {
  readonly manager: PoolManager<ServerLink>;
  private readonly credentials = new Map<string, ServerCredentials>();

  constructor(private readonly options: PoolLenderOptions) {
    this.manager = new PoolManager<ServerLink>({
      config: options.config,
      mode: options.mode,
      registry: options.registry,
      log: options.log,
      connect: serverLinkConnector({
        target: options.target,
        credentials: (key) => this.credentials.get(key.user) ?? null,
        reuseReadBuffer: options.reuseReadBuffer,
      }),
    });
  }

  acquire(identity: LinkIdentity, credentials: ServerCredentials, signal: AbortSignal, client: string): Promise<ServerLink> {
    this.credentials.set(identity.user, credentials);
    return this.manager.acquire(identity.database, identity.user, { signal, client });
  }

  lendTo(identity: LinkIdentity, credentials: ServerCredentials, client: string, take: (link: ServerLink) => void, refuse: (err: PoolError) => void): Ticket {
    this.credentials.set(identity.user, credentials);
    return this.manager.lendTo(identity.database, identity.user, client, take, refuse);
  }

  release(link: ServerLink, reusable: boolean, reset = false): void {
    this.manager.release(link, { dirty: !reusable, reset })?.catch((err: Error) => this.options.log.warn({ err: err.message }, 'pool release failed'));
  }

  /** The pooling mode of the (database, user) pool: `pool.mode`, or its `pool_mode` override. */
  modeOf(identity: LinkIdentity): PoolMode {
    return this.manager.pool(identity.database, identity.user).settings.mode;
  }

  closeIdle(database: string): number {
    return this.manager.closeIdle(database);
  }

  close(): Promise<void> {
    return this.manager.close();
  }
}
