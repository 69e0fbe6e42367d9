/**
 * The four ways pgbench reaches PostgreSQL: directly, through a bare Node.js
 * pipe proxy, through txproxy and through PgBouncer. Each proxy runs as its
 * own process so its CPU time can be read from /proc.
 */
import net from 'node:net';
import path from 'node:path';
import { freePort } from '../src/embedded/embedded-postgres.js';
import type { Child, ChildRegistry } from './children.js';
import { findPgbouncer, pgbouncerVersion, unprivilegedUser, writePgbouncerConfig } from './pgbouncer.js';

export const ENDPOINT_NAMES = ['direct', 'pipe', 'txproxy', 'pgbouncer'] as const;
export type EndpointName = (typeof ENDPOINT_NAMES)[number];

export interface Endpoint {
  name: EndpointName;
  host: string;
  port: number;
  /** The proxy process, whose CPU time is measured; null for direct. */
  child: Child | null;
  /** What runs there, for the results file. */
  description: string;
}

export interface EndpointContext {
  children: ChildRegistry;
  server: { host: string; port: number; user: string; password: string; database: string };
  /** The compiled output directory (dist/). */
  distDir: string;
  /** Scratch space: the trace file, PgBouncer's configuration. */
  tempDir: string;
  clients: number;
}

const START_TIMEOUT_MS = 15_000;

export function directEndpoint(ctx: EndpointContext): Endpoint {
  return { name: 'direct', host: ctx.server.host, port: ctx.server.port, child: null, description: 'PostgreSQL itself' };
}

export async function startPipeProxy(ctx: EndpointContext): Promise<Endpoint> {
  const script = path.join(ctx.distDir, 'bench', 'pipe-proxy.js');
  const child = ctx.children.spawn('pipe proxy', process.execPath, [script, ctx.server.host, String(ctx.server.port)]);
  const [, port] = await child.waitForLine(/^listening (\d+)$/, START_TIMEOUT_MS);
  return { name: 'pipe', host: '127.0.0.1', port: Number(port), child, description: `Node.js ${process.version} socket.pipe() proxy` };
}

/** txproxy with its default configuration, tracing every statement and transaction to `traceFile`. */
export async function startTxproxy(ctx: EndpointContext, traceFile: string): Promise<Endpoint> {
  const main = path.join(ctx.distDir, 'src', 'main.js');
  const upstream = `postgres://${ctx.server.host}:${ctx.server.port}/${ctx.server.database}?sslmode=disable`;
  // TXPROXY_* variables from the caller's shell would change what is measured.
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TXPROXY_')));
  const args = [main, '--listen', '127.0.0.1:0', '--upstream', upstream, '--http', 'off', '--trace', traceFile, '--log-level', 'warn'];
  const child = ctx.children.spawn('txproxy', process.execPath, args, { env });
  const [, port] = await child.waitForLine(/^txproxy listening on \S+?:(\d+),/, START_TIMEOUT_MS);
  return { name: 'txproxy', host: '127.0.0.1', port: Number(port), child, description: `txproxy (${path.relative(process.cwd(), main)}), trace to a file` };
}

/** Null when PgBouncer is not installed. */
export async function startPgbouncer(ctx: EndpointContext): Promise<Endpoint | null> {
  const binary = findPgbouncer();
  if (binary === null) return null;
  const port = await freePort();
  const ini = writePgbouncerConfig({
    dir: path.join(ctx.tempDir, 'pgbouncer'),
    listenPort: port,
    upstreamHost: ctx.server.host,
    upstreamPort: ctx.server.port,
    database: ctx.server.database,
    user: ctx.server.user,
    password: ctx.server.password,
    poolSize: ctx.clients + 2,
  });
  const child = ctx.children.spawn('pgbouncer', binary, [ini], { ...unprivilegedUser() });
  await waitForPort(child, '127.0.0.1', port);
  return { name: 'pgbouncer', host: '127.0.0.1', port, child, description: `${pgbouncerVersion(binary)}, pool_mode=session` };
}

/** Polls until something accepts connections on host:port, failing early if `child` exits. */
async function waitForPort(child: Child, host: string, port: number): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (!child.running) throw new Error(`${child.name} exited before listening on ${host}:${port}:\n${child.tail()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ host, port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`${child.name} is not listening on ${host}:${port} after ${START_TIMEOUT_MS} ms:\n${child.tail()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
