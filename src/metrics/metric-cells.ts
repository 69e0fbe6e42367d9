/**
 * Counters and histograms whose labelled children are plain objects, for
 * metrics updated once per statement.
 *
 * prom-client's own Counter and Histogram hash the label object into a
 * string on every `inc()`/`observe()`, children included. Here the caller
 * keeps the child (a cell) and an update is one addition, or a short bucket
 * scan. The families are registered on a prom-client Registry and answer its
 * `get()` like prom-client's own metrics do, so the exposition text is still
 * written by prom-client.
 */
import type { Metric, Registry } from 'prom-client';

export interface CounterCell {
  readonly labels: Readonly<Record<string, string>>;
  value: number;
}

export interface HistogramCell {
  readonly labels: Readonly<Record<string, string>>;
  /** Observations per bucket (not cumulative); the last slot is +Inf. */
  readonly buckets: Float64Array;
  sum: number;
  count: number;
  /** The latest exemplar per bucket (OpenMetrics); null until the first one. */
  exemplars: (Exemplar | null)[] | null;
}

/** An observation that names the trace it came from (OpenMetrics exemplar). */
export interface Exemplar {
  labelSet: Readonly<Record<string, string>>;
  value: number;
  /** Epoch seconds. */
  timestamp: number;
}

interface FamilyOptions {
  name: string;
  help: string;
  labelNames: readonly string[];
}

/** What prom-client's Registry reads from a metric. */
interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
  /** Written only in the OpenMetrics exposition. */
  exemplar?: Exemplar;
}

abstract class CellFamily<C extends { labels: Readonly<Record<string, string>> }> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';
  abstract readonly type: 'counter' | 'histogram';
  protected readonly cells = new Map<string, C>();

  constructor(registry: Registry, options: FamilyOptions) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    // The Registry only calls name, type, get() and reset() (duck-typed at runtime).
    registry.registerMetric(this as unknown as Metric);
  }

  /**
   * The cell for these label values (in `labelNames` order), created on
   * first use. Builds a key string: callers keep the cell rather than call
   * this per update.
   */
  cell(...values: string[]): C {
    if (values.length !== this.labelNames.length) {
      throw new Error(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
    }
    const key = values.join('\u0000');
    let cell = this.cells.get(key);
    if (cell === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]));
      cell = this.create(Object.freeze(labels));
      this.cells.set(key, cell);
    }
    return cell;
  }

  protected abstract create(labels: Readonly<Record<string, string>>): C;
  protected abstract values(): MetricValue[];
  /** Zeroes every cell; cells stay valid, so callers' references keep working. */
  abstract reset(): void;

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValue[] }> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.values() };
  }
}

export class CounterFamily extends CellFamily<CounterCell> {
  readonly type = 'counter';

  protected create(labels: Readonly<Record<string, string>>): CounterCell {
    return { labels, value: 0 };
  }

  protected values(): MetricValue[] {
    return [...this.cells.values()].map((c) => ({ value: c.value, labels: { ...c.labels } }));
  }

  reset(): void {
    for (const c of this.cells.values()) c.value = 0;
  }
}

export class HistogramFamily extends CellFamily<HistogramCell> {
  readonly type = 'histogram';
  readonly upperBounds: readonly number[];

  constructor(registry: Registry, options: FamilyOptions & { buckets: readonly number[] }) {
    super(registry, options);
    const sorted = [...options.buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => !Number.isFinite(b) || (i > 0 && b === sorted[i - 1]))) {
      throw new Error(`${options.name}: buckets must be distinct finite numbers`);
    }
    this.upperBounds = sorted;
  }

  protected create(labels: Readonly<Record<string, string>>): HistogramCell {
    return { labels, buckets: new Float64Array(this.upperBounds.length + 1), sum: 0, count: 0, exemplars: null };
  }

  /** Records one value in a cell of this family. */
  observe(cell: HistogramCell, value: number): void {
    const i = this.bucketOf(value);
    cell.buckets[i]++;
    cell.sum += value;
    cell.count++;
  }

  /**
   * Names the trace of a value already observed in `cell`: the bucket it fell
   * in shows it as its exemplar until a later one replaces it.
   */
  exemplar(cell: HistogramCell, value: number, labelSet: Readonly<Record<string, string>>, timestampMs: number): void {
    const exemplars = (cell.exemplars ??= new Array<Exemplar | null>(this.upperBounds.length + 1).fill(null));
    exemplars[this.bucketOf(value)] = { labelSet, value, timestamp: timestampMs / 1000 };
  }

  private bucketOf(value: number): number {
    const bounds = this.upperBounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    return i;
  }

  protected values(): MetricValue[] {
    const out: MetricValue[] = [];
    const bucketName = `${this.name}_bucket`;
    for (const c of this.cells.values()) {
      let cumulative = 0;
      const exemplars = c.exemplars;
      for (let i = 0; i < this.upperBounds.length; i++) {
        cumulative += c.buckets[i];
        const value: MetricValue = { metricName: bucketName, labels: { ...c.labels, le: this.upperBounds[i] }, value: cumulative };
        if (exemplars?.[i] != null) value.exemplar = exemplars[i]!;
        out.push(value);
      }
      const inf: MetricValue = { metricName: bucketName, labels: { ...c.labels, le: '+Inf' }, value: c.count };
      if (exemplars?.[this.upperBounds.length] != null) inf.exemplar = exemplars[this.upperBounds.length]!;
      out.push(inf);
      out.push({ metricName: `${this.name}_sum`, labels: { ...c.labels }, value: c.sum });
      out.push({ metricName: `${this.name}_count`, labels: { ...c.labels }, value: c.count });
    }
    return out;
  }

  reset(): void {
    for (const c of this.cells.values()) {
      c.buckets.fill(0);
      c.sum = 0;
      c.count = 0;
      c.exemplars = null;
    }
  }
}
