/**
 * What the pool needs from a server connection. ServerLink
 * (src/server-link) is the real one; tests use byte-free fakes.
 */
import type { ControlResult } from '../server-link/server-link.js';

export interface PoolLink {
  readonly backendPid: number;
  readonly closed: boolean;
  /** Runs txproxy's own statements while no client holds the link. */
  run(sql: string): Promise<ControlResult>;
  /** A client reads and writes the link from now on. */
  lend(): void;
  /** Back from the client, which read every answer up to a ReadyForQuery. */
  reclaim(): void;
  close(): void;
  /** Called once when the link closes, whoever closed it. */
  onClosed(listener: (reason: string) => void): void;
}

/** Opens and logs in a new link for one pool, within `timeoutMs`. */
export type LinkConnector<L extends PoolLink = PoolLink> = (key: PoolKey, timeoutMs: number) => Promise<L>;

export interface PoolKey {
  database: string;
  user: string;
}
