/**
 * The Prometheus registry txproxy's metrics live in. Not prom-client's global
 * one: each App (and each test) gets its own, so metrics never leak between
 * instances in one process.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';

export function createRegistry(options: { processMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  if (options.processMetrics !== false) collectDefaultMetrics({ register: registry });
  return registry;
}
