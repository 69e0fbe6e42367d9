/**
 * A TCP hop between txproxy and PostgreSQL that can break the link on
 * demand, the way a network or a crashing server does: cut every connection
 * now, cut after a number of server bytes (in the middle of a message of a
 * large result), or stop listening so that new connections are refused.
 * It records what each side sent, so tests can read the last message txproxy
 * sent to the server.
 */
import net from 'node:net';

export interface HopConnection {
  /** txproxy's side (it connected to the hop). */
  readonly downstream: net.Socket;
  /** The hop's connection to PostgreSQL. */
  readonly upstream: net.Socket;
  /** Everything txproxy sent towards the server. */
  readonly fromProxy: Buffer[];
  /** Bytes the server sent towards txproxy, counted. */
  serverBytes: number;
  /** Both sockets are gone. */
  closed: boolean;
  /** A planned cut is under way: nothing more is forwarded. */
  cutting: boolean;
}

export interface FaultHop {
  readonly host: string;
  readonly port: number;
  readonly connections: HopConnection[];
  /** An upstream URL for txproxy that goes through the hop. */
  url(user: string, password: string): string;
  /** Resets both sockets of every open connection at once (TCP RST, no goodbye). */
  cutAll(): void;
  /**
   * Forwards `bytes` more server bytes on `connection`, then closes both
   * sockets: a cut in the middle of whatever the server was sending (the
   * bytes before the cut are delivered, nothing after).
   * Resolves when the cut happened.
   */
  cutAfterServerBytes(connection: HopConnection, bytes: number): Promise<void>;
  /** Stops listening: new connections are refused; open ones stay. */
  refuse(): Promise<void>;
  /** Listens again on the same port. */
  accept(): Promise<void>;
  close(): Promise<void>;
}

export async function startFaultHop(target: { host: string; port: number }): Promise<FaultHop> {
  const connections: HopConnection[] = [];
  const cutPlans = new Map<HopConnection, { remaining: number; done: () => void }>();

  /** Closes both sockets: with `reset`, a TCP RST (a crash, a dropped link), else a FIN with no goodbye message. */
  const destroy = (connection: HopConnection, reset = false) => {
    for (const socket of [connection.downstream, connection.upstream]) {
      if (reset && !socket.destroyed && socket.readyState === 'open') socket.resetAndDestroy();
      else socket.destroy();
    }
    connection.closed = true;
  };

  const onConnection = (downstream: net.Socket) => {
    // allowHalfOpen on both sides: a FIN passes on alone, as through a network, and answers still flow back.
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    const connection: HopConnection = { downstream, upstream, fromProxy: [], serverBytes: 0, closed: false, cutting: false };
    connections.push(connection);
    downstream.on('error', () => undefined);
    upstream.on('error', () => undefined);
    downstream.on('data', (chunk: Buffer) => {
      connection.fromProxy.push(chunk);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (connection.cutting) return;
      const plan = cutPlans.get(connection);
      if (plan === undefined) {
        connection.serverBytes += chunk.length;
        downstream.write(chunk);
        return;
      }
      const part = chunk.subarray(0, plan.remaining);
      plan.remaining -= part.length;
      connection.serverBytes += part.length;
      if (plan.remaining > 0) {
        downstream.write(part);
        return;
      }
      cutPlans.delete(connection);
      connection.cutting = true;
      upstream.pause();
      // The partial write goes out before the reset.
      downstream.write(part, () => {
        destroy(connection);
        plan.done();
      });
    });
    downstream.on('end', () => upstream.end());
    upstream.on('end', () => downstream.end());
    downstream.on('close', () => {
      upstream.destroy();
      connection.closed = true;
    });
    upstream.on('close', () => {
      downstream.destroy();
      connection.closed = true;
    });
  };

  let server = net.createServer({ allowHalfOpen: true }, onConnection);
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  const port = await listen(0);

  return {
    host: '127.0.0.1',
    port,
    connections,
    url: (user, password) =>
      `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres?sslmode=disable`,
    cutAll() {
      for (const connection of connections) if (!connection.closed) destroy(connection, true);
    },
    cutAfterServerBytes(connection, bytes) {
      return new Promise((done) => cutPlans.set(connection, { remaining: bytes, done }));
    },
    refuse() {
      // close() stops listening at once; its callback waits for open connections, so it is not awaited.
      server.close();
      return Promise.resolve();
    },
    async accept() {
      server = net.createServer({ allowHalfOpen: true }, onConnection);
      await listen(port);
    },
    async close() {
      for (const connection of connections) destroy(connection);
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
