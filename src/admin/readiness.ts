/**
 * Is the upstream server there? Opens a connection and sends an SSLRequest:
 * any PostgreSQL answers it with one byte (`S` or `N`) before
 * authentication, so the probe needs no credentials, and the server does
 * not log a connection that ends after its answer.
 * https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { serialize } from '../protocol/frontend-messages.js';
import { describeTarget, type UpstreamTarget } from '../proxy/upstream.js';

export type Readiness = { ready: true; ms: number } | { ready: false; reason: string };

export function probeUpstream(target: UpstreamTarget, timeoutMs: number): Promise<Readiness> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = target.host.startsWith('/')
      ? net.connect({ path: `${target.host}/.s.PGSQL.${target.port}` })
      : net.connect({ host: target.host, port: target.port });
    let settled = false;
    const done = (result: Readiness) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(
      () => done({ ready: false, reason: `no answer from ${describeTarget(target)} within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(serialize.requestSsl()));
    socket.once('data', (chunk: Buffer) => {
      const answer = chunk[0];
      if (answer === 0x53 /* S */ || answer === 0x4e /* N */) done({ ready: true, ms: performance.now() - started });
      else done({ ready: false, reason: `${describeTarget(target)} answered SSLRequest with byte 0x${answer.toString(16)}: not a PostgreSQL server?` });
    });
    socket.once('error', (err) => done({ ready: false, reason: `cannot connect to ${describeTarget(target)}: ${err.message}` }));
    socket.once('close', () => done({ ready: false, reason: `${describeTarget(target)} closed the connection without answering` }));
  });
}
