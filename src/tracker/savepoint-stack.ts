/**
 * The savepoints of one transaction, with PostgreSQL's semantics:
 * - SAVEPOINT a pushes; a duplicate name is allowed and the newest wins;
 * - ROLLBACK TO a keeps a and drops everything newer;
 * - RELEASE a drops a and everything newer.
 * Names arrive already folded (unquoted names lower-cased).
 */
export class SavepointStack {
  private readonly names: string[] = [];

  get depth(): number {
    return this.names.length;
  }

  /** Oldest first. */
  list(): readonly string[] {
    return this.names;
  }

  push(name: string): void {
    this.names.push(name);
  }

  /** Drops `name` and newer ones; returns how many were dropped (0: unknown name). */
  release(name: string): number {
    const i = this.names.lastIndexOf(name);
    if (i < 0) return 0;
    const dropped = this.names.length - i;
    this.names.length = i;
    return dropped;
  }

  /** Drops the savepoints newer than `name`; returns how many (−1: unknown name). */
  rollbackTo(name: string): number {
    const i = this.names.lastIndexOf(name);
    if (i < 0) return -1;
    const dropped = this.names.length - i - 1;
    this.names.length = i + 1;
    return dropped;
  }

  clear(): void {
    // Setting an array's length is a runtime call, even to what it is; most transactions have no savepoint.
    if (this.names.length !== 0) this.names.length = 0;
  }
}
