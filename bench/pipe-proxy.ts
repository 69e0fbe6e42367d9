/**
 * The reference point for txproxy's cost: a bare Node.js TCP proxy that
 * pipes each client socket to its own upstream socket and back, doing
 * nothing else. Whatever txproxy costs above this is its own work (framing,
 * tracking, tracing); what this costs is Node's socket I/O.
 *
 * Run as its own process so its CPU time can be read from /proc:
 *   node dist/bench/pipe-proxy.js UPSTREAM_HOST UPSTREAM_PORT
 * It listens on a free port on 127.0.0.1 and prints `listening PORT`.
 */
import net from 'node:net';

const [upstreamHost, upstreamPortText] = process.argv.slice(2);
const upstreamPort = Number(upstreamPortText);
if (!upstreamHost || !Number.isInteger(upstreamPort) || upstreamPort <= 0) {
  process.stderr.write('usage: pipe-proxy UPSTREAM_HOST UPSTREAM_PORT\n');
  process.exit(2);
}

// TCP_NODELAY on both legs, as txproxy and PgBouncer set it: otherwise Nagle
// and delayed ACKs would make the reference slower than it needs to be.
const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: upstreamHost, port: upstreamPort, noDelay: true });
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth).on('close', closeBoth);
  upstream.on('error', closeBoth).on('close', closeBoth);
  client.pipe(upstream);
  upstream.pipe(client);
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as net.AddressInfo).port}\n`);
});

const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
