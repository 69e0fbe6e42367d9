/**
 * What a client waiting for a server connection is told when it gets none.
 * Each is a Report, ready for an ErrorResponse; docs/pooling.md lists them.
 */
import type { ErrorFields } from '../protocol/decode.js';
import type { Report, Severity } from '../protocol/encode.js';
import type { PoolKey } from './pool-link.js';

/** An acquire() that ended without a link; `report` is what the client should see. */
export class PoolError extends Error {
  override name = 'PoolError';
  constructor(readonly report: Report) {
    super(report.message);
  }
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}

/**
 * No link came free within query_wait_timeout. PgBouncer's message and
 * SQLSTATE (08P01, in class 08 "connection exception", which drivers treat
 * as a lost connection worth a retry), so code that recognises PgBouncer's
 * error recognises this one.
 */
export function queryWaitTimeout(key: PoolKey, waitedMs: number): Report {
  return {
    severity: 'FATAL',
    code: '08P01',
    message: 'query_wait_timeout',
    detail: `No server connection for user "${key.user}" on database "${key.database}" came free within ${seconds(waitedMs)}.`,
    hint:
      'Raise the pool size (pool.default_pool_size, or pool_size for this database or user) or pool.query_wait_timeout, ' +
      'or find what holds the server connections.',
  };
}

/**
 * Logging in to the server failed: the server's own error where it sent
 * one (wrong password, no such database), else a connection failure.
 */
export function loginFailed(key: PoolKey, reason: string, fields: ErrorFields | undefined, retryMs: number | null): Report {
  const retry = retryMs === null ? undefined : `txproxy tries again for this pool after ${seconds(retryMs)} (pool.server_login_retry).`;
  if (fields !== undefined && fields.code !== '') {
    const detail = [fields.detail, retry].filter((part) => part !== undefined).join(' ');
    return {
      severity: 'FATAL',
      code: fields.code,
      message: fields.message,
      ...(detail === '' ? {} : { detail }),
      ...(fields.hint === undefined ? {} : { hint: fields.hint }),
    };
  }
  return {
    severity: 'FATAL',
    // As without pooling: sqlclient_unable_to_establish_sqlconnection.
    code: '08001',
    message: `txproxy cannot connect to the server for user "${key.user}" on database "${key.database}": ${reason}`,
    detail: retry,
  };
}

/** The pool is closing (txproxy is shutting down). */
export function poolClosing(): Report {
  return { severity: 'FATAL' as Severity, code: '57P01', message: 'terminating connection because txproxy is shutting down' };
}
