/**
 * Makes every pin visible (transaction pooling): a client held on its
 * server because of state there is counted in `txproxy_pool_pinned_clients`
 * and `txproxy_pool_pins_total`, and a `pin` or `unpin` trace record says
 * which session, on which backend, for what.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { TraceBus } from '../trace/trace-sink.js';
import type { SessionInfo } from '../tracker/types.js';
import type { PinReason } from './session-effects.js';

export interface PinObserver {
  changed(session: SessionInfo, added: readonly PinReason[], removed: readonly PinReason[]): void;
}

export class PinReport implements PinObserver {
  private readonly pinned: Gauge | null = null;
  private readonly pins: Counter | null = null;

  constructor(registry: Registry | null, private readonly trace: TraceBus) {
    if (registry === null) return;
    this.pinned = new Gauge({
      name: 'txproxy_pool_pinned_clients',
      help: 'Clients held on their server connection in transaction pooling, by the state that holds them.',
      labelNames: ['reason'],
      registers: [registry],
    });
    this.pins = new Counter({
      name: 'txproxy_pool_pins_total',
      help: 'Times a client was pinned to its server connection in transaction pooling, by the state that pinned it.',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  changed(session: SessionInfo, added: readonly PinReason[], removed: readonly PinReason[]): void {
    for (const reason of added) {
      this.pinned?.inc({ reason });
      this.pins?.inc({ reason });
    }
    for (const reason of removed) this.pinned?.dec({ reason });
    if (!this.trace.active) return;
    if (added.length > 0) this.write('pin', session, added);
    if (removed.length > 0) this.write('unpin', session, removed);
  }

  private write(kind: 'pin' | 'unpin', session: SessionInfo, reasons: readonly PinReason[]): void {
    this.trace.write({
      kind,
      time: new Date().toISOString(),
      'session.id': session.id,
      'db.namespace': session.database,
      'pg.backend_pid': session.backendPid,
      reasons,
    });
  }
}
