/**
 * Which session owns which server backend, from BackendKeyData. A client's
 * CancelRequest carries the pid and secret key it was given, so a cancel is
 * honoured only when both match a live session, as the server itself would.
 *
 * The pid a client was given and the backend its session is on now are the
 * same, except in transaction pooling: there the client keeps the pid of
 * the server it logged in on (other clients may have been given the same
 * one, with other keys) while its transactions run on whichever server is
 * free. Cancels are matched on the first, lock waits and traces attributed
 * by the second.
 */
import { timingSafeEqual } from 'node:crypto';

export interface BackendOwner {
  /** The backend pid the client was given in BackendKeyData. */
  readonly keyPid: number;
  /** The server backend the session is on now; 0 when it holds none. */
  readonly backendPid: number;
  /** The secret key the client was given. */
  readonly backendKey: Buffer | null;
}

export class BackendKeyRegistry<T extends BackendOwner = BackendOwner> {
  private readonly byKeyPid = new Map<number, T[]>();
  private readonly byServerPid = new Map<number, T>();

  register(owner: T): void {
    const owners = this.byKeyPid.get(owner.keyPid);
    if (owners === undefined) this.byKeyPid.set(owner.keyPid, [owner]);
    else if (!owners.includes(owner)) owners.push(owner);
    this.onServer(owner, 0, owner.backendPid);
  }

  unregister(owner: T): void {
    const owners = this.byKeyPid.get(owner.keyPid);
    if (owners !== undefined) {
      const rest = owners.filter((o) => o !== owner);
      if (rest.length === 0) this.byKeyPid.delete(owner.keyPid);
      else this.byKeyPid.set(owner.keyPid, rest);
    }
    this.onServer(owner, owner.backendPid, 0);
  }

  /** The owner moved from backend `from` to backend `to` (0: none). */
  onServer(owner: T, from: number, to: number): void {
    if (from !== 0 && this.byServerPid.get(from) === owner) this.byServerPid.delete(from);
    if (to !== 0) this.byServerPid.set(to, owner);
  }

  /** The session on server backend `pid` now. */
  get(pid: number): T | undefined {
    return this.byServerPid.get(pid);
  }

  /** The owner given `pid` and `key`. */
  match(pid: number, key: Buffer): T | undefined {
    for (const owner of this.byKeyPid.get(pid) ?? []) {
      const expected = owner.backendKey;
      if (expected != null && expected.length === key.length && timingSafeEqual(expected, key)) return owner;
    }
    return undefined;
  }

  /** Sessions registered. */
  get size(): number {
    let n = 0;
    for (const owners of this.byKeyPid.values()) n += owners.length;
    return n;
  }
}
