/**
 * A stand-in for an OpenTelemetry collector's OTLP/HTTP port, so that the
 * `txproxy-prod` endpoint exports as it would in service: it answers 200 to
 * every POST /v1/traces with an empty ExportTraceServiceResponse (no bytes
 * in protobuf, `{}` in JSON) and counts the requests and bytes.
 * GET /stats returns those counts as JSON.
 *
 * Run as its own process, so that receiving spans does not take CPU from
 * the benchmark's own process, nor hide in the proxy's:
 *   node dist/bench/otlp-receiver.js
 * It listens on a free port on 127.0.0.1 and prints `listening PORT`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceiverStats {
  requests: number;
  bytes: number;
}

const stats: ReceiverStats = { requests: 0, bytes: 0 };

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
    return;
  }
  if (req.method !== 'POST' || req.url !== '/v1/traces') {
    res.writeHead(404).end();
    return;
  }
  req.on('data', (chunk: Buffer) => (stats.bytes += chunk.length));
  req.on('end', () => {
    stats.requests++;
    const json = (req.headers['content-type'] ?? '').includes('json');
    res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' }).end(json ? '{}' : undefined);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});

const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
