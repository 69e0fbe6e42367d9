/** Reads metric values from a prom-client registry, as a scrape would see them. */
import type { Registry } from 'prom-client';

/**
 * The sum of a metric's samples whose labels include `labels`. `name` may
 * be a histogram's sample name (`…_count`, `…_sum`). 0 when the metric has
 * no such sample yet; throws when the metric is not registered at all.
 */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const base = name.replace(/_(count|sum|bucket)$/, '');
  const metric = registry.getSingleMetric(name) ?? registry.getSingleMetric(base);
  if (metric === undefined) throw new Error(`metric ${name} is not registered`);
  const { values } = await metric.get();
  let sum = 0;
  for (const sample of values) {
    const sampleName = (sample as { metricName?: string }).metricName ?? base;
    if (sampleName !== name) continue;
    if (Object.entries(labels).every(([k, v]) => String((sample.labels as Record<string, unknown>)[k]) === v)) sum += sample.value;
  }
  return sum;
}
