/**
 * A listener's state for each session, looked up on every event: a Map
 * that remembers the entry it gave last. A session's events come in runs
 * (a statement's start, its end and its transaction's end are read from
 * one or two socket chunks), so most lookups are one comparison instead of
 * a hash lookup.
 */
export class PerSession<K extends object | string, V> {
  private readonly map = new Map<K, V>();
  private lastKey: K | null = null;
  private lastValue: V | undefined = undefined;

  get(key: K): V | undefined {
    if (key === this.lastKey) return this.lastValue;
    const value = this.map.get(key);
    // Only a value found is remembered: one set later must not be shadowed by an undefined.
    if (value !== undefined) {
      this.lastKey = key;
      this.lastValue = value;
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.set(key, value);
    this.lastKey = key;
    this.lastValue = value;
  }

  delete(key: K): boolean {
    if (key === this.lastKey) {
      this.lastKey = null;
      this.lastValue = undefined;
    }
    return this.map.delete(key);
  }

  has(key: K): boolean {
    return key === this.lastKey || this.map.has(key);
  }

  get size(): number {
    return this.map.size;
  }

  values(): IterableIterator<V> {
    return this.map.values();
  }
}
