/**
 * `GET /pools`: the server connection pools as JSON, read from the pools at
 * request time — PgBouncer's SHOW POOLS and SHOW SERVERS in one answer.
 * Field names are the admin API's (camelCase, as `/sessions`), so a link's
 * `sessionId` and `backendPid` match a session's `id` and `backendPid`.
 */
import type { PoolSnapshot } from '../pool/pool-snapshot.js';

/** The pools as the admin endpoint reads them. */
export interface PoolSource {
  /** How clients are pooled (`pool.mode` as resolved at start): `none` has no pools. */
  mode: 'none' | 'session' | 'transaction';
  snapshot(): PoolSnapshot[];
}

export interface PoolJson {
  database: string;
  user: string;
  mode: PoolSnapshot['mode'];
  clients: PoolSnapshot['clients'];
  servers: PoolSnapshot['servers'];
  maxWaitSeconds: number;
  loginError: { code: string; message: string; retryInSeconds: number } | null;
  links: {
    backendPid: number;
    state: PoolSnapshot['links'][number]['state'];
    /** The client session holding the link (`/sessions` id); null unless `active`. */
    sessionId: string | null;
    ageSeconds: number;
    idleSeconds: number;
  }[];
}

export interface PoolsAnswer {
  mode: PoolSource['mode'];
  pools: PoolJson[];
}

export function viewPools(source: PoolSource): PoolsAnswer {
  return { mode: source.mode, pools: source.snapshot().map(viewPool) };
}

function viewPool(pool: PoolSnapshot): PoolJson {
  const error = pool.login_error;
  return {
    database: pool.database,
    user: pool.user,
    mode: pool.mode,
    clients: { ...pool.clients },
    servers: { ...pool.servers },
    maxWaitSeconds: round(pool.max_wait_seconds),
    loginError: error === null ? null : { code: error.code, message: error.message, retryInSeconds: round(error.retry_in_seconds) },
    links: pool.links.map((link) => ({
      backendPid: link.backend_pid,
      state: link.state,
      sessionId: link.client,
      ageSeconds: round(link.age_seconds),
      idleSeconds: round(link.idle_seconds),
    })),
  };
}

/** Milliseconds are precision enough for a person or a dashboard. */
function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
