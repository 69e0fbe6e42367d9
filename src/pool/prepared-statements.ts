/**
 * The two registries behind prepared statements in transaction pooling,
 * where a client's transactions run on whichever server is free:
 *
 * - a client's named statements, as the client sees them (name → the Parse
 *   body after the name: query text, parameter count and type OIDs);
 * - per server link, the statements prepared on that server under names
 *   txproxy chose, keyed by that same content, bounded, least recently used
 *   first out.
 *
 * Two clients preparing the same text with the same types share one server
 * statement, as with PgBouncer's max_prepared_statements.
 */

/** A client's protocol-level named statements. Unnamed statements never enter. */
export class ClientStatements {
  private readonly byName = new Map<string, Buffer>();

  get(name: string): Buffer | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  /** Keeps a copy: the content usually views a read buffer that is reused. */
  set(name: string, content: Buffer): void {
    this.byName.set(name, Buffer.from(content));
  }

  delete(name: string): void {
    this.byName.delete(name);
  }

  /** DISCARD ALL / DEALLOCATE ALL. */
  clear(): void {
    this.byName.clear();
  }

  get size(): number {
    return this.byName.size;
  }
}

/** One statement prepared on a server. */
export interface ServerStatement {
  serverName: string;
  content: Buffer;
  /** The cache's transaction count when the statement was last used. */
  usedIn: number;
}

/** What adding a statement to a server cache did. */
export interface CacheAddition {
  statement: ServerStatement;
  /** Server names to Close on that server before the new Parse: evicted ones and strays. */
  toClose: string[];
}

/** The key of a statement's content: the bytes themselves, exact, no hash to collide. */
function keyOf(content: Buffer): string {
  return content.toString('latin1');
}

/**
 * The statements prepared on one server connection, at most `capacity` of
 * them except while a transaction still uses more: a statement used in the
 * server's current transaction is never evicted, because closing it would
 * close the portals bound from it.
 */
export class ServerStatementCache {
  /** Insertion order is recency order: a use moves the entry to the end. */
  private readonly byContent = new Map<string, ServerStatement>();
  /** Server names whose Close the server skipped (after an error): closed with the next eviction. */
  private readonly strays: string[] = [];
  private transaction = 0;
  private nextId = 1;
  /** The server's transaction status at its last ReadyForQuery: I, T or E. */
  status = 'I';
  /** Counts for metrics: uses found here, statements prepared here, statements evicted. */
  readonly stats = { hits: 0, misses: 0, evictions: 0 };

  constructor(
    readonly capacity: number,
    private readonly prefix = 'txp_',
  ) {
    if (!(capacity >= 1)) throw new RangeError('prepared statement cache capacity must be at least 1');
  }

  /** The server statement for this content, marked as used now; undefined if not prepared here. */
  use(content: Buffer): ServerStatement | undefined {
    const key = keyOf(content);
    const statement = this.byContent.get(key);
    if (statement === undefined) return undefined;
    this.stats.hits++;
    this.byContent.delete(key);
    this.byContent.set(key, statement);
    statement.usedIn = this.transaction;
    return statement;
  }

  /**
   * Records a statement about to be prepared under a new server name, and
   * evicts the least recently used ones beyond capacity that the current
   * transaction does not use. The caller sends Close for `toClose`, then
   * the Parse.
   */
  add(content: Buffer): CacheAddition {
    const statement: ServerStatement = { serverName: `${this.prefix}${this.nextId++}`, content: Buffer.from(content), usedIn: this.transaction };
    this.stats.misses++;
    const toClose = this.strays.splice(0);
    for (const [key, old] of this.byContent) {
      if (this.byContent.size < this.capacity) break;
      if (old.usedIn === this.transaction) continue;
      this.byContent.delete(key);
      this.stats.evictions++;
      toClose.push(old.serverName);
    }
    this.byContent.set(keyOf(content), statement);
    return { statement, toClose };
  }

  /** The server never prepared it (its Parse failed or was skipped after an error). */
  remove(statement: ServerStatement): void {
    const key = keyOf(statement.content);
    if (this.byContent.get(key) === statement) this.byContent.delete(key);
  }

  /** The server skipped the Close of `serverName` (after an error): the statement is still there. */
  closeSkipped(serverName: string): void {
    this.strays.push(serverName);
  }

  /** Server names still to close: strays the next addition has not taken yet. */
  get pendingCloses(): readonly string[] {
    return this.strays;
  }

  /** The server said ReadyForQuery: at status I no portal outlives the transaction, every statement may be evicted again. */
  readyForQuery(status: string): void {
    this.status = status;
    if (status === 'I') this.transaction++;
  }

  /** DISCARD ALL / DEALLOCATE ALL ran on the server: it has none left. */
  clear(): void {
    this.byContent.clear();
    this.strays.length = 0;
  }

  has(content: Buffer): boolean {
    return this.byContent.has(keyOf(content));
  }

  get size(): number {
    return this.byContent.size;
  }

  /** Server names, least recently used first. */
  serverNames(): string[] {
    return [...this.byContent.values()].map((s) => s.serverName);
  }
}
