/**
 * The configuration file a pooling txproxy endpoint runs with: txproxy's
 * default configuration (config/txproxy.yaml) with the endpoint's pool,
 * client authentication and client limit on top. A file rather than
 * TXPROXY_* variables, because per-database pool sizes
 * (`pool.databases.<name>.pool_size`) have no variable.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { DatabasePool } from './workloads.js';

export interface TxproxyPoolSetup {
  mode: 'session' | 'transaction';
  /** `pool.default_pool_size`: server connections per database/user pair. */
  poolSize: number;
  /** Databases whose pools have a size of their own. */
  databasePools: readonly DatabasePool[];
  /** The auth file (PgBouncer's userlist format) txproxy logs clients in from. */
  authFile: string;
  /** The most clients any workload connects at once. */
  maxClients: number;
}

/** `base` (the parsed default configuration) with the pooling settings of `setup`. */
export function pooledTxproxyConfig(base: Record<string, unknown>, setup: TxproxyPoolSetup): Record<string, unknown> {
  const section = (key: string) => (typeof base[key] === 'object' && base[key] !== null ? (base[key] as Record<string, unknown>) : {});
  return {
    ...base,
    // As PgBouncer here: room for every client of the largest workload, and a few more.
    max_client_conn: setup.maxClients + 10,
    pool: {
      ...section('pool'),
      mode: setup.mode,
      default_pool_size: setup.poolSize,
      databases: Object.fromEntries(setup.databasePools.map((p) => [p.database, { pool_size: p.poolSize }])),
    },
    auth: { ...section('auth'), type: 'scram-sha-256', file: setup.authFile },
  };
}

/** Writes the configuration to `file` (as JSON, which is YAML too) and returns its path. */
export function writePooledTxproxyConfig(file: string, defaultConfigFile: string, setup: TxproxyPoolSetup): string {
  const base = (parseYaml(readFileSync(defaultConfigFile, 'utf8')) ?? {}) as Record<string, unknown>;
  writeFileSync(file, JSON.stringify(pooledTxproxyConfig(base, setup), null, 2) + '\n', { mode: 0o600 });
  return file;
}
