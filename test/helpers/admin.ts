/**
 * Talks to txproxy's admin HTTP endpoint in tests: plain requests, JSON, and
 * `/metrics` read with a Prometheus text-format parser.
 */
import http from 'node:http';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import { waitLimit } from './deadlines.js';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export function request(port: number, path: string, method = 'GET', headers: http.OutgoingHttpHeaders = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function getJson<T = any>(port: number, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; json: T }> {
  const res = await request(port, path);
  return { status: res.status, headers: res.headers, json: JSON.parse(res.body) as T };
}

export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export interface HistogramSample {
  count: number;
  sum: number;
  /** Cumulative counts by upper bound, in the order exposed (+Inf last). */
  buckets: [string, number][];
}

/** One `/metrics` response, parsed. */
export class Scrape {
  private constructor(
    readonly contentType: string | undefined,
    /** The families as the parser reads the exposition unchanged (it throws on any invalid line). */
    readonly families: ParsedFamily[],
    private readonly samples: Map<string, Sample[]>,
  ) {}

  static async of(port: number): Promise<Scrape> {
    const res = await request(port, '/metrics');
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.body}`);
    return Scrape.parse(res.body, res.headers['content-type']);
  }

  static parse(text: string, contentType?: string): Scrape {
    const families = parsePrometheusTextFormat(text);
    // The parser folds a labelled histogram's series into one, so read the
    // samples a second time with histograms declared untyped: each of
    // _bucket, _sum and _count is then a family of its own, labels intact.
    const flat = parsePrometheusTextFormat(text.replace(/^(# TYPE \S+) histogram$/gm, '$1 untyped'));
    // (A name recurs there, once per label set: collect them all.)
    const samples = new Map<string, Sample[]>();
    for (const family of flat) {
      const list = samples.get(family.name) ?? [];
      for (const m of family.metrics) list.push({ labels: m.labels ?? {}, value: Number(m.value) });
      samples.set(family.name, list);
    }
    return new Scrape(contentType, families, samples);
  }

  family(name: string): ParsedFamily | undefined {
    return this.families.find((f) => f.name === name);
  }

  /** Every series of `name` whose labels include `filter`. */
  series(name: string, filter: Record<string, string> = {}): Sample[] {
    return (this.samples.get(name) ?? []).filter((s) => Object.entries(filter).every(([k, v]) => s.labels[k] === v));
  }

  /** The value of the one series matching; undefined when none does. */
  value(name: string, filter: Record<string, string> = {}): number | undefined {
    const found = this.series(name, filter);
    if (found.length > 1) throw new Error(`${found.length} series of ${name} match ${JSON.stringify(filter)}`);
    return found[0]?.value;
  }

  /** Sum over the series matching. */
  sum(name: string, filter: Record<string, string> = {}): number {
    return this.series(name, filter).reduce((a, s) => a + s.value, 0);
  }

  /** The histogram series with exactly these labels (besides `le`). */
  histogram(name: string, labels: Record<string, string>): HistogramSample | undefined {
    const same = (s: Sample) =>
      Object.keys(s.labels).filter((k) => k !== 'le').length === Object.keys(labels).length &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v);
    const count = this.series(`${name}_count`).filter(same);
    if (count.length === 0) return undefined;
    return {
      count: count[0].value,
      sum: this.series(`${name}_sum`).filter(same)[0].value,
      buckets: this.series(`${name}_bucket`)
        .filter(same)
        .map((s) => [s.labels.le, s.value]),
    };
  }
}

/** A `/events` subscription: records and comments as they arrive. */
export interface EventSubscription {
  status: number;
  headers: http.IncomingHttpHeaders;
  records: Record<string, any>[];
  comments: string[];
  /** Resolves with the first record (already received or yet to come) that matches. */
  waitFor(match: (record: Record<string, any>) => boolean, timeoutMs?: number, what?: string): Promise<Record<string, any>>;
  /** Stops reading from the socket (a slow consumer), and starts again. */
  pause(): void;
  resume(): void;
  close(): void;
}

export function subscribe(port: number, path = '/events', headers: http.OutgoingHttpHeaders = {}): Promise<EventSubscription> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const records: Record<string, any>[] = [];
      const comments: string[] = [];
      let pending = '';
      const waiters = new Set<() => void>();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        pending += chunk;
        let end;
        while ((end = pending.indexOf('\n\n')) >= 0) {
          const block = pending.slice(0, end);
          pending = pending.slice(end + 2);
          for (const line of block.split('\n')) {
            if (line.startsWith('data: ')) records.push(JSON.parse(line.slice(6)));
            else if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else throw new Error(`unexpected line in event stream: ${line}`);
          }
        }
        for (const wake of waiters) wake();
      });
      res.on('error', () => undefined);
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        records,
        comments,
        waitFor(match, timeoutMs = 5000, what = 'a matching record') {
          return new Promise((done, fail) => {
            const check = () => {
              const found = records.find(match);
              if (found === undefined) return;
              clearTimeout(timer);
              waiters.delete(check);
              done(found);
            };
            const limit = waitLimit(timeoutMs);
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`timed out waiting for ${what} (${limit} ms)`));
            }, limit);
            waiters.add(check);
            check();
          });
        },
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}
