/**
 * The built txproxy command (`dist/src/main.js`, built by `npm test` or
 * `npm run build`) as a real child process: run it to completion, or start
 * it and wait until it prints its DATABASE_URL.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MAIN = fileURLToPath(new URL('../../dist/src/main.js', import.meta.url));

/**
 * The first lines of a configuration file for `--config`: listen on a free
 * port and proxy to `server`, with no admin endpoint and no trace, logging
 * at info (where reloads are reported).
 */
export function configHead(server: { user: string; host: string; port: number }): string {
  return `listen: 127.0.0.1:0
upstream: postgres://${server.user}@${server.host}:${server.port}/postgres?sslmode=disable
http: "off"
trace:
  output: "off"
log:
  level: info
`;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The environment without any TXPROXY_* variable of the caller's, plus `env`. */
export function environment(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TXPROXY_')));
  return { ...clean, ...env };
}

export interface SpawnOptions {
  /** The process's limit of open file descriptors (`ulimit -n`). */
  fileLimit?: number;
}

function spawnCli(args: string[], env: Record<string, string>, options: SpawnOptions = {}): ChildProcess {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first`);
  const stdio: ['ignore', 'pipe', 'pipe'] = ['ignore', 'pipe', 'pipe'];
  if (options.fileLimit !== undefined) {
    // The shell sets the limit, then becomes node: the child's pid is txproxy's.
    const script = `ulimit -n ${options.fileLimit} && exec "$0" "$@"`;
    return spawn('/bin/sh', ['-c', script, process.execPath, MAIN, ...args], { env: environment(env), stdio });
  }
  return spawn(process.execPath, [MAIN, ...args], { env: environment(env), stdio });
}

/** Runs txproxy until it exits (it is killed after `timeoutMs`). */
export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 15_000): Promise<CliResult> {
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

export interface RunningCli {
  child: ChildProcess;
  /** The port txproxy listens on, from the DATABASE_URL it printed. */
  port: number;
  databaseUrl: string;
  /** The line `txproxy listening on …, proxying to …`. */
  listeningLine: string;
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Sends a signal; resolves at once. */
  kill(signal: NodeJS.Signals): void;
}

/** Starts txproxy and resolves once it printed its DATABASE_URL. */
export async function startCli(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000, options: SpawnOptions = {}): Promise<RunningCli> {
  const child = spawnCli(args, env, options);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const databaseUrl = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`txproxy printed no DATABASE_URL within ${timeoutMs} ms; stderr:\n${stderr}`));
    }, timeoutMs);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk;
      const match = /^DATABASE_URL=(\S+)$/m.exec(stderr);
      if (match !== null) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`txproxy exited with code ${code} before printing DATABASE_URL; stderr:\n${stderr}`));
    });
  });
  return {
    child,
    port: Number(new URL(databaseUrl).port),
    databaseUrl,
    listeningLine: /^txproxy listening on .*$/m.exec(stderr)?.[0] ?? '',
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    kill: (signal) => {
      child.kill(signal);
    },
  };
}
