/**
 * The two text formats `/metrics` answers in: Prometheus' classic text
 * (the default) and OpenMetrics, which a scraper asks for in its Accept
 * header and which alone carries exemplars (the trace id of an observation).
 *
 * prom-client writes both, but a Registry has one format, and writing
 * OpenMetrics renames the counters it holds (it strips `_total` from their
 * names for good). So OpenMetrics is written by a Registry made for the
 * scrape, holding stand-ins of the metrics: the stand-ins are renamed and
 * the metrics stay as they are for the next classic scrape.
 */
import { Registry, type Metric } from 'prom-client';

export const OPENMETRICS_CONTENT_TYPE = Registry.OPENMETRICS_CONTENT_TYPE;

/** Whether an Accept header asks for OpenMetrics (and does not rank it at q=0). */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined) return false;
  return accept.split(',').some((part) => {
    const [type, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    if (type !== 'application/openmetrics-text') return false;
    const q = params.find((p) => p.startsWith('q='));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

interface Readable {
  name: string;
  get(): Promise<{ name: string } & Record<string, unknown>> | ({ name: string } & Record<string, unknown>);
}

/** The registry's metrics in the OpenMetrics text format, exemplars included. */
export async function openMetricsText(registry: Registry): Promise<string> {
  const scrape = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>();
  scrape.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  for (const metric of registry.getMetricsAsArray() as unknown as Readable[]) {
    const standIn = {
      name: metric.name,
      type: (metric as unknown as { type: string }).type,
      // The stand-in's name is what the format gets: renamed by the scrape registry, not the metric's own.
      async get() {
        return { ...(await metric.get()), name: standIn.name };
      },
      reset() {},
    };
    scrape.registerMetric(standIn as unknown as Metric);
  }
  return scrape.metrics();
}
