/**
 * An OTLP/HTTP trace receiver for tests: accepts `POST /v1/traces` with a
 * JSON body (OTLP's JSON encoding), decodes it as the OpenTelemetry
 * packages define an ExportTraceServiceRequest, and keeps every span with
 * its resource. It can also hold requests unanswered (a receiver that hangs)
 * or refuse them.
 */
import http from 'node:http';
import type net from 'node:net';
import type { IKeyValue, IAnyValue } from '@opentelemetry/otlp-transformer/build/src/common/internal-types.js';
import type { IExportTraceServiceRequest, ISpan } from '@opentelemetry/otlp-transformer/build/src/trace/internal-types.js';

export interface ReceivedSpan {
  service: string;
  scope: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  /** Epoch ms (from the unix-nano fields). */
  start: number;
  end: number;
  attributes: Record<string, unknown>;
  events: { name: string; time: number; attributes: Record<string, unknown> }[];
  status: { code: number; message: string };
}

export type ReceiverMode = 'accept' | 'hang' | 'refuse';

export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** Export requests received, whatever was answered. */
  requests: number;
  /** Content types of the requests, in order. */
  contentTypes: string[];
  /** Headers of the requests, in order. */
  headers: http.IncomingHttpHeaders[];
  /** Bodies of protobuf requests, accepted undecoded (this receiver decodes OTLP's JSON encoding). */
  protobufBodies: Buffer[];
  mode: ReceiverMode;
  close(): Promise<void>;
}

export async function startOtlpReceiver(mode: ReceiverMode = 'accept'): Promise<OtlpReceiver> {
  const held: http.ServerResponse[] = [];
  const receiver: OtlpReceiver = {
    url: '',
    spans: [],
    requests: 0,
    contentTypes: [],
    headers: [],
    protobufBodies: [],
    mode,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.requests++;
      receiver.contentTypes.push(String(req.headers['content-type']));
      receiver.headers.push(req.headers);
      if (receiver.mode === 'hang') {
        held.push(res);
        return;
      }
      if (receiver.mode === 'refuse') {
        res.writeHead(503).end();
        return;
      }
      if (req.url === '/v1/traces' && req.headers['content-type'] === 'application/x-protobuf') {
        receiver.protobufBodies.push(Buffer.concat(chunks));
        res.writeHead(200, { 'Content-Type': 'application/x-protobuf' }).end();
        return;
      }
      if (req.url !== '/v1/traces' || !String(req.headers['content-type']).startsWith('application/json')) {
        res.writeHead(415).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as IExportTraceServiceRequest;
      receiver.spans.push(...decode(body));
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  receiver.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return receiver;
}

function decode(request: IExportTraceServiceRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributes(resourceSpans.resource?.attributes ?? []);
    for (const scopeSpans of resourceSpans.scopeSpans) {
      for (const span of scopeSpans.spans ?? []) out.push(decodeSpan(span, String(resource['service.name']), scopeSpans.scope?.name ?? ''));
    }
  }
  return out;
}

function decodeSpan(span: ISpan, service: string, scope: string): ReceivedSpan {
  return {
    service,
    scope,
    traceId: id(span.traceId),
    spanId: id(span.spanId),
    parentSpanId: span.parentSpanId === undefined ? '' : id(span.parentSpanId),
    name: span.name,
    kind: span.kind,
    start: nanosToMs(span.startTimeUnixNano),
    end: nanosToMs(span.endTimeUnixNano),
    attributes: attributes(span.attributes),
    events: span.events.map((e) => ({ name: e.name, time: nanosToMs(e.timeUnixNano), attributes: attributes(e.attributes) })),
    status: { code: span.status.code ?? 0, message: span.status.message ?? '' },
  };
}

/** OTLP/JSON writes ids as hex strings. */
function id(value: string | Uint8Array): string {
  return typeof value === 'string' ? value : Buffer.from(value).toString('hex');
}

function nanosToMs(value: unknown): number {
  return Number(BigInt(String(value)) / 1000n) / 1000;
}

function attributes(list: IKeyValue[]): Record<string, unknown> {
  return Object.fromEntries(list.map((kv) => [kv.key, anyValue(kv.value)]));
}

function anyValue(v: IAnyValue): unknown {
  if (v.stringValue != null) return v.stringValue;
  if (v.boolValue != null) return v.boolValue;
  if (v.intValue != null) return Number(v.intValue);
  if (v.doubleValue != null) return v.doubleValue;
  if (v.arrayValue != null) return (v.arrayValue.values ?? []).map(anyValue);
  return null;
}
