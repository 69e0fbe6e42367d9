/**
 * Which session owns which server backend, from BackendKeyData. A client's
 * CancelRequest carries the pid and secret key the server gave it (txproxy
 * relays them unchanged), so a cancel is honoured only when both match a
 * live session, as the server itself would.
 */
import { timingSafeEqual } from 'node:crypto';

export interface BackendOwner {
  readonly backendPid: number;
  readonly backendKey: Buffer | null;
}

export class BackendKeyRegistry<T extends BackendOwner = BackendOwner> {
  private readonly byPid = new Map<number, T>();

  register(owner: T): void {
    this.byPid.set(owner.backendPid, owner);
  }

  unregister(owner: T): void {
    if (this.byPid.get(owner.backendPid) === owner) this.byPid.delete(owner.backendPid);
  }

  get(pid: number): T | undefined {
    return this.byPid.get(pid);
  }

  /** The owner of `pid` if `key` is its secret key. */
  match(pid: number, key: Buffer): T | undefined {
    const owner = this.byPid.get(pid);
    const expected = owner?.backendKey;
    if (owner === undefined || expected == null || expected.length !== key.length) return undefined;
    return timingSafeEqual(expected, key) ? owner : undefined;
  }

  get size(): number {
    return this.byPid.size;
  }
}
