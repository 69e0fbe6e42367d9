/**
 * A pool as plain data, for an admin endpoint and for tests; names as
 * PgBouncer's SHOW POOLS where it has them (cl_active, sv_idle, maxwait…).
 */
export interface PoolSnapshot {
  database: string;
  user: string;
  mode: 'session' | 'transaction';
  clients: {
    /** Clients holding a link. */
    active: number;
    /** Clients waiting for one. */
    waiting: number;
  };
  servers: {
    /** Lent to a client. */
    active: number;
    /** Ready to be lent. */
    idle: number;
    /** Idle longer than server_check_delay: checked before the next loan. */
    used: number;
    /** Running the reset or the check query. */
    tested: number;
    /** Being opened and logged in. */
    login: number;
  };
  /** How long the client waiting longest has waited; 0 when nobody waits. */
  max_wait_seconds: number;
  /** The last login failure, while server_login_retry holds off the next attempt. */
  login_error: { code: string; message: string; retry_in_seconds: number } | null;
  links: {
    backend_pid: number;
    state: 'active' | 'idle' | 'used' | 'tested';
    /** The borrower holding it, as it named itself to acquire(); null unless active. */
    client: string | null;
    age_seconds: number;
    idle_seconds: number;
  }[];
}
